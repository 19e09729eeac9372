//! Fresh PostgreSQL databases for the gateways loadgen starts with `--store-url`: each gateway
//! gets a database of its own on that server (made before it starts, dropped after it stops),
//! so points never see each other's sessions.

use tokio_postgres::NoTls;

/// `url` with its database name replaced by `name` (query parameters kept).
pub fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (authority, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    let query = tail.find('?').map_or("", |i| &tail[i..]);
    format!("{scheme}://{authority}/{name}{query}")
}

async fn admin(base: &str) -> Result<tokio_postgres::Client, String> {
    let (client, connection) = tokio_postgres::connect(base, NoTls).await.map_err(|e| {
        format!("--store-url: {}", agent_gateway::config::redact_url(&e.to_string()))
    })?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Makes a new empty database on the server of `base` and returns its URL.
pub async fn fresh_database(base: &str) -> Result<String, String> {
    let name = format!("loadgen_{}", uuid::Uuid::new_v4().simple());
    admin(base)
        .await?
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await
        .map_err(|e| format!("--store-url: CREATE DATABASE: {e}"))?;
    Ok(with_database(base, &name))
}

/// Drops the database of `url` (best effort: it is a benchmark's scratch database).
pub async fn drop_database(base: &str, url: &str) {
    let name = url.rsplit('/').next().unwrap_or_default();
    let name = name.split('?').next().unwrap_or_default();
    if let Ok(client) = admin(base).await {
        let _ =
            client.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_database_name_is_replaced_and_the_rest_kept() {
        let url = "postgres://u:p@127.0.0.1:5432/gateway?sslmode=disable";
        assert_eq!(
            super::with_database(url, "x"),
            "postgres://u:p@127.0.0.1:5432/x?sslmode=disable"
        );
        assert_eq!(super::with_database("postgresql://h", "y"), "postgresql://h/y");
    }
}
