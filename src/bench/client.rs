//! One HTTP/1.1 keep-alive connection: what a load generator's worker
//! holds, so a request pays for no connection set-up.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A base URL's `host:port`, checked (only `http://`).
pub fn authority(base: &str) -> Result<String> {
    let uri: Uri = base
        .parse()
        .with_context(|| format!("`{base}` is not a URL such as http://127.0.0.1:8070"))?;
    if uri.scheme_str() != Some("http") {
        bail!("`{base}`: only http:// is supported");
    }
    let authority = uri
        .authority()
        .ok_or_else(|| anyhow!("`{base}` has no host"))?;
    let port = authority.port_u16().unwrap_or(80);
    Ok(format!("{}:{port}", authority.host()))
}

pub struct Connection {
    authority: String,
    sender: SendRequest<Full<Bytes>>,
    token: Option<String>,
}

/// Every request's deadline: a stalled server fails the request instead
/// of holding the run.
pub const TIMEOUT: Duration = Duration::from_secs(10);

impl Connection {
    pub async fn open(authority: &str, token: Option<String>) -> Result<Connection> {
        let stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(authority))
            .await
            .map_err(|_| anyhow!("connecting to {authority} timed out"))?
            .with_context(|| format!("connecting to {authority}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .with_context(|| format!("HTTP handshake with {authority}"))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Connection {
            authority: authority.to_string(),
            sender,
            token,
        })
    }

    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// Sends one request; the status and the body.
    pub async fn send(&mut self, method: Method, path: &str, body: Bytes) -> Result<(u16, Bytes)> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.authority)
            .header("content-type", "application/json");
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request.body(Full::new(body))?;
        let call = async {
            self.sender.ready().await?;
            let response = self.sender.send_request(request).await?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        };
        tokio::time::timeout(TIMEOUT, call)
            .await
            .map_err(|_| anyhow!("{path}: no answer within {TIMEOUT:?}"))?
            .with_context(|| path.to_string())
    }

    pub async fn json(
        &mut self,
        method: Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<(u16, serde_json::Value)> {
        let (status, bytes) = self
            .send(method, path, Bytes::from(body.to_string()))
            .await?;
        let value = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::String(
                String::from_utf8_lossy(&bytes).into_owned(),
            ))
        };
        Ok((status, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_take_only_http_urls() {
        assert_eq!(
            authority("http://127.0.0.1:8070").unwrap(),
            "127.0.0.1:8070"
        );
        assert_eq!(authority("http://maestro/").unwrap(), "maestro:80");
        assert!(authority("https://maestro:443").is_err());
        assert!(authority("not a url").is_err());
    }
}
