//! Loops' `api-key` and `lists` routes: read from the config file.

use actix_web::{HttpResponse, get, web};
use serde_json::{Value, json};

use crate::config::ConfigFile;

/// Test the API key; answers the team name (`team_name` in the config file).
#[utoipa::path(tag = "Loops: account",
    responses((status = 200, body = crate::api::schema::ApiKeyResponse),
              (status = 401, body = crate::api::schema::ErrorBody)))]
#[get("/v1/api-key")]
pub async fn test_api_key(config: web::Data<ConfigFile>) -> HttpResponse {
    let team_name = config.team_name.as_deref().unwrap_or("Roster");
    HttpResponse::Ok().json(json!({ "success": true, "teamName": team_name }))
}

/// The mailing lists of the config file.
#[utoipa::path(tag = "Loops: account",
    responses((status = 200, body = Vec<crate::api::schema::MailingListBody>)))]
#[get("/v1/lists")]
pub async fn list_mailing_lists(config: web::Data<ConfigFile>) -> HttpResponse {
    let lists: Vec<Value> = config
        .lists
        .iter()
        .map(|list| {
            json!({
                "id": list.id,
                "name": list.name,
                "description": list.description,
                "isPublic": list.public,
            })
        })
        .collect();
    HttpResponse::Ok().json(lists)
}
