//! A TCP proxy in front of PostgreSQL that a test can cut (every connection dropped, new
//! ones refused) and restore: a database outage without stopping the shared cluster.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct DbProxy {
    port: u16,
    up: Arc<AtomicBool>,
    generation: watch::Sender<u64>,
}

impl DbProxy {
    /// Starts forwarding a free local port to `target_port`; lives as long as the test.
    pub async fn start(target_port: u16) -> &'static DbProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (generation, _) = watch::channel(0);
        let proxy: &'static DbProxy = Box::leak(Box::new(DbProxy {
            port: listener.local_addr().unwrap().port(),
            up: Arc::new(AtomicBool::new(true)),
            generation,
        }));
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if !proxy.up.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut cut = proxy.generation.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(("127.0.0.1", target_port)).await
                    else {
                        return;
                    };
                    let mut client = client;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        proxy
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The database becomes unreachable: open connections drop, new ones are refused.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}
