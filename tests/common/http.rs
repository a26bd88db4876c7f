//! A tiny blocking HTTP/1.1 client over `std::net::TcpStream`: one-shot requests, and
//! raw connections kept open across requests that send any bytes and count what comes
//! back (hostile-request and resource tests).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long a client socket waits for the server before a test fails (never hangs).
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection to `addr` with [`IO_TIMEOUT`] for reads and writes.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// One request to `addr` on a new connection (`Connection: close`), the response read
/// in full (usable from any thread: it needs only the address).
pub fn request_at(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> HttpResponse {
    let mut stream = connect(addr);
    stream
        .write_all(request_bytes(method, path, headers, true).as_bytes())
        .unwrap_or_else(|e| panic!("{method} {path}: cannot send: {e}"));
    let mut reader = BufReader::new(stream);
    read_response(&mut reader, method == "HEAD")
        .unwrap_or_else(|e| panic!("{method} {path}: bad or missing response: {e}"))
}

/// The bytes of one request; `close` adds `Connection: close`.
pub fn request_bytes(method: &str, path: &str, headers: &[(&str, &str)], close: bool) -> String {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    if close {
        r.push_str("Connection: close\r\n");
    }
    r.push_str("\r\n");
    r
}

/// A parsed response: its head (status, headers; reached through `Deref`) and body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status line and header fields.
    pub head: ResponseHead,
    /// The body (empty for HEAD, 304, 204, 1xx).
    pub body: Vec<u8>,
}

impl std::ops::Deref for HttpResponse {
    type Target = ResponseHead;

    fn deref(&self) -> &ResponseHead {
        &self.head
    }
}

/// The status line and header fields of a response.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
}

impl ResponseHead {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `Content-Length`, parsed.
    pub fn content_length(&self) -> Option<u64> {
        self.header("Content-Length").map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|_| panic!("bad Content-Length {v:?}"))
        })
    }
}

/// Reads a status line and the header fields (up to the empty line).
pub fn read_head(r: &mut impl BufRead) -> io::Result<ResponseHead> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before a status line",
        ));
    }
    let mut parts = line.trim_end().splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad status line {line:?}"),
        ));
    }
    let status: u16 = parts.next().and_then(|s| s.parse().ok()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad status line {line:?}"),
        )
    })?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside the header section",
            ));
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, format!("bad header line {l:?}"))
        })?;
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    Ok(ResponseHead { status, headers })
}

/// Reads one whole response framed by `Content-Length` (HTTP/1.1 §6.3): no body for a
/// response to HEAD, 1xx, 204 and 304. Chunked bodies are refused: every response of
/// this server must be sized.
pub fn read_response(r: &mut impl BufRead, head_request: bool) -> io::Result<HttpResponse> {
    let head = read_head(r)?;
    let bodiless = head_request || head.status == 204 || head.status == 304 || head.status < 200;
    let mut body = Vec::new();
    if !bodiless {
        if head.header("Transfer-Encoding").is_some() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unexpected Transfer-Encoding in {:?}", head.headers),
            ));
        }
        let len = head.content_length().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("no Content-Length in {:?}", head.headers),
            )
        })?;
        body = vec![0; len as usize];
        r.read_exact(&mut body)?;
    }
    Ok(HttpResponse { head, body })
}

/// A reader that counts the bytes read through it.
pub struct Counting<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// One client connection kept open across requests: raw request bytes out (anything,
/// including bytes a normalising client would refuse to send), responses in, and every
/// byte received from the socket counted.
pub struct Conn {
    reader: BufReader<Counting<TcpStream>>,
}

impl Conn {
    /// A new connection to `addr` ([`IO_TIMEOUT`] on reads and writes).
    pub fn open(addr: SocketAddr) -> Conn {
        Conn {
            reader: BufReader::new(Counting {
                inner: connect(addr),
                count: 0,
            }),
        }
    }

    /// The socket.
    pub fn stream(&self) -> &TcpStream {
        &self.reader.get_ref().inner
    }

    /// Writes `raw` as is.
    pub fn send(&mut self, raw: &[u8]) -> io::Result<()> {
        let s = &mut self.reader.get_mut().inner;
        s.write_all(raw)?;
        s.flush()
    }

    /// Reads one response framed by `Content-Length` (see [`read_response`]).
    pub fn response(&mut self, head_request: bool) -> io::Result<HttpResponse> {
        read_response(&mut self.reader, head_request)
    }

    /// Reads one response head, leaving the body on the socket.
    pub fn head(&mut self) -> io::Result<ResponseHead> {
        read_head(&mut self.reader)
    }

    /// Reads up to `buf.len()` body bytes (0 at the end of the stream).
    pub fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }

    /// Reads until the peer closes, returning what came (e.g. bytes after a response
    /// that should have been the last on a `Connection: close` exchange).
    pub fn read_to_end(&mut self) -> io::Result<Vec<u8>> {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest)?;
        Ok(rest)
    }

    /// Bytes received from the socket so far (heads, bodies, anything).
    pub fn received(&self) -> u64 {
        self.reader.get_ref().count
    }

    /// Whether the peer has closed the connection (end of stream or reset) within
    /// `wait`; `false` if it is still open and silent.
    pub fn closed_by_peer(&mut self, wait: Duration) -> bool {
        let _ = self.stream().set_read_timeout(Some(wait));
        let closed = match self.reader.fill_buf() {
            Ok(buf) => buf.is_empty(),
            Err(e) => !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
        };
        let _ = self.stream().set_read_timeout(Some(IO_TIMEOUT));
        closed
    }
}

/// Like [`request_at`], but returns connection and protocol errors instead of
/// panicking (for background threads and for requests that may legitimately fail).
pub fn try_request_at(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> io::Result<HttpResponse> {
    let mut conn = Conn::open(addr);
    conn.send(request_bytes(method, path, headers, true).as_bytes())?;
    conn.response(method == "HEAD")
}
