//! Health routes.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::spawn_app;

#[sqlx::test]
async fn healthz_and_readyz_answer_ok(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    for path in ["/healthz", "/readyz"] {
        let response = app
            .client
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
    }
}
