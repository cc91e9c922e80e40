//! The benchmark service: `GET /hello/{name}` greets and counts visits.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};

#[tokio::main]
async fn main() {
    let pool = warm_service::pool().await.expect("database");
    let app = Router::new()
        .route(
            "/hello/{name}",
            get(|State(pool): State<sqlx::SqlitePool>, Path(name): Path<String>| async move {
                let visits = warm_service::count_visit(&pool, &name).await.unwrap_or(0);
                Json(warm_service::greeting(&name, visits))
            }),
        )
        .with_state(pool);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    println!("listening on {}", listener.local_addr().expect("address"));
    axum::serve(listener, app).await.expect("serve");
}
