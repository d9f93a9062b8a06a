//! A throwaway ClickHouse server for tests: Debian's `clickhouse-server` (18.16, which
//! `scripts/test` installs when it is missing) on free loopback ports, its data in a
//! temporary folder, with a user `roster` whose password is `secret`. It can be
//! stopped and started again on the same port and data, as a restart is.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct ClickHouse {
    pub url: String,
    dir: PathBuf,
    config: PathBuf,
    process: Option<Child>,
    client: reqwest::Client,
}

pub const USER: &str = "roster";
pub const PASSWORD: &str = "secret";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn server_binary() -> String {
    std::env::var("CLICKHOUSE_SERVER").unwrap_or_else(|_| {
        for path in ["/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"] {
            if std::path::Path::new(path).exists() {
                return path.to_owned();
            }
        }
        panic!(
            "clickhouse-server is not installed: `apt-get install clickhouse-server` \
             (scripts/test installs it), or set CLICKHOUSE_SERVER"
        )
    })
}

impl ClickHouse {
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("roster-clickhouse-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let (http, tcp) = (free_port(), free_port());
        let d = dir.display();
        let config = dir.join("config.xml");
        std::fs::write(
            &config,
            format!(
                "<yandex>
  <logger><level>warning</level><console>1</console></logger>
  <http_port>{http}</http_port><tcp_port>{tcp}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>{d}/data/</path><tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <users_config>{d}/users.xml</users_config>
  <default_profile>default</default_profile><default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>134217728</uncompressed_cache_size>
  <timezone>UTC</timezone>
</yandex>"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("users.xml"),
            format!(
                "<yandex><profiles><default></default></profiles><users>
  <{USER}><password>{PASSWORD}</password><networks><ip>127.0.0.1</ip></networks>
  <profile>default</profile><quota>default</quota></{USER}>
</users><quotas><default></default></quotas></yandex>"
            ),
        )
        .unwrap();
        let mut server = Self {
            url: format!("http://127.0.0.1:{http}"),
            dir,
            config,
            process: None,
            client: reqwest::Client::new(),
        };
        server.resume().await;
        server
    }

    /// Starts the server (again), and waits until it answers.
    pub async fn resume(&mut self) {
        let child = Command::new(server_binary())
            .arg(format!("--config-file={}", self.config.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("clickhouse-server starts");
        self.process = Some(child);
        for _ in 0..200 {
            let ping = self.client.get(format!("{}/ping", self.url)).send().await;
            if ping.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("clickhouse-server did not answer within 10 s");
    }

    /// Kills the server, as a crash would.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.process.take() {
            child.kill().unwrap();
            tokio::task::spawn_blocking(move || child.wait())
                .await
                .unwrap()
                .unwrap();
        }
    }

    /// Runs `sql` and returns what it answered, one JSON object per row when it asks
    /// `FORMAT JSONEachRow`.
    pub async fn query(&self, sql: &str) -> String {
        let response = self
            .client
            .post(&self.url)
            .basic_auth(USER, Some(PASSWORD))
            .body(sql.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{sql}: {status} {text}");
        text
    }

    pub async fn rows(&self, sql: &str) -> Vec<serde_json::Value> {
        self.query(&format!("{sql} FORMAT JSONEachRow"))
            .await
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
