//! Checking a TLS configuration before launch (feature `tls`).
//!
//! Rocket reads the certificate chain and the private key named by `[default.tls]`
//! (or `ROCKET_TLS`, or the binary's `--tls-cert`/`--tls-key`) only when it binds its
//! listener, and reports any problem there as a failure to *bind* — the same error
//! kind as a port in use. [`check_tls`] does the same work first, with Rocket's own
//! PEM loaders and the same rustls (on ring) that Rocket links, and says which file is
//! wrong and how: missing or unreadable, no certificate in it, no usable key in it, or
//! a key that is not the certificate's (its public key differs from the one in the
//! end-entity certificate, what rustls's `CertifiedKey::keys_match` compares).
//!
//! With TLS on, Rocket offers HTTP/2 by ALPN (`h2`, then `http/1.1`); on plain TCP it
//! speaks HTTP/1.1 and HTTP/2 with prior knowledge (h2c). The responses of this crate
//! are the same on all of them (`tests/protocols.rs`).

use std::fmt;
use std::io;
use std::path::PathBuf;

use rocket::http::tls::rustls;
use rocket::http::tls::util::{load_certs, load_private_key};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// Where a certificate chain or key comes from: a file, or bytes given in the
/// configuration (`TlsConfig::from_bytes`, or an array in `Rocket.toml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// A PEM file (relative paths in `Rocket.toml` are already resolved against the
    /// file's directory, as Rocket does).
    File(PathBuf),
    /// PEM bytes held in the configuration itself.
    Inline,
}

impl fmt::Display for TlsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsSource::File(p) => write!(f, "{}", p.display()),
            TlsSource::Inline => f.write_str("(inline PEM bytes)"),
        }
    }
}

/// What is wrong with a TLS configuration. Each variant names the file (or
/// [`TlsSource::Inline`]) it is about; `Display` is one line, fit for a terminal.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// The certificate or key file could not be opened or read.
    Unreadable {
        /// `"certificate"` or `"private key"`.
        what: &'static str,
        /// The file.
        source: TlsSource,
        /// Why.
        error: io::Error,
    },
    /// The certificate file holds no PEM certificate (or a malformed one).
    Certificate {
        /// The file.
        source: TlsSource,
        /// Why, as Rocket's loader or rustls says.
        reason: String,
    },
    /// The key file holds no usable private key (PKCS#8, PKCS#1 or SEC1 PEM).
    Key {
        /// The file.
        source: TlsSource,
        /// Why, as Rocket's loader or rustls says.
        reason: String,
    },
    /// The private key is not the one of the (first, end-entity) certificate.
    Mismatch {
        /// The certificate file.
        cert: TlsSource,
        /// The key file.
        key: TlsSource,
    },
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Unreadable {
                what,
                source,
                error,
            } => write!(f, "cannot read the TLS {what} {source}: {error}"),
            TlsError::Certificate { source, reason } => {
                write!(f, "bad TLS certificate file {source}: {reason}")
            }
            TlsError::Key { source, reason } => {
                write!(f, "bad TLS private key file {source}: {reason}")
            }
            TlsError::Mismatch { cert, key } => write!(
                f,
                "the TLS private key {key} does not match the certificate {cert} \
                 (its public key differs)"
            ),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Unreadable { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Checks the TLS part of Rocket's configuration as Rocket will use it at launch.
///
/// `Ok(false)` when TLS is not configured (plain HTTP/1.1 and h2c); `Ok(true)` when
/// the certificate chain and the key load and belong together (HTTPS, with HTTP/2 by
/// ALPN). Rocket re-reads the files at launch; this check only makes the error come
/// first and name the file.
///
/// ```rust,no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config: rocket::Config = rocket::Config::figment().extract()?;
/// if rocket_mmap::setup::check_tls(&config)? {
///     println!("serving https://{}:{}/", config.address, config.port);
/// }
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`TlsError`]: a file that cannot be read, holds no certificate or no usable key,
/// or a key that does not match the certificate.
pub fn check_tls(config: &rocket::Config) -> Result<bool, TlsError> {
    if !config.tls_enabled() {
        return Ok(false);
    }
    let Some(tls) = config.tls.as_ref() else {
        return Ok(false);
    };
    let (cert_source, cert_pem) = load(tls.certs().left(), tls.certs().right(), "certificate")?;
    let (key_source, key_pem) = load(tls.key().left(), tls.key().right(), "private key")?;
    check_pair(&cert_pem, &cert_source, &key_pem, &key_source)?;
    Ok(true)
}

/// The bytes of a file (`path`) or of the configuration itself (`inline`).
fn load(
    path: Option<PathBuf>,
    inline: Option<&[u8]>,
    what: &'static str,
) -> Result<(TlsSource, Vec<u8>), TlsError> {
    match (path, inline) {
        (Some(path), _) => match std::fs::read(&path) {
            Ok(bytes) => Ok((TlsSource::File(path), bytes)),
            Err(error) => Err(TlsError::Unreadable {
                what,
                source: TlsSource::File(path),
                error,
            }),
        },
        (None, inline) => Ok((TlsSource::Inline, inline.unwrap_or_default().to_vec())),
    }
}

/// Loads the chain and the key with Rocket's own loaders and checks that the key's
/// public key is the end-entity certificate's.
fn check_pair(
    cert_pem: &[u8],
    cert_source: &TlsSource,
    key_pem: &[u8],
    key_source: &TlsSource,
) -> Result<(), TlsError> {
    let certs: Vec<CertificateDer<'static>> =
        load_certs(&mut io::Cursor::new(cert_pem)).map_err(|e| TlsError::Certificate {
            source: cert_source.clone(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Certificate {
            source: cert_source.clone(),
            reason: "no PEM certificate (-----BEGIN CERTIFICATE-----) in it".into(),
        });
    }
    let key: PrivateKeyDer<'static> =
        load_private_key(&mut io::Cursor::new(key_pem)).map_err(|e| TlsError::Key {
            source: key_source.clone(),
            reason: e.to_string(),
        })?;
    let provider = rustls::crypto::ring::default_provider();
    match CertifiedKey::from_der(certs, key, &provider) {
        Ok(_) => Ok(()),
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::Mismatch {
            cert: cert_source.clone(),
            key: key_source.clone(),
        }),
        // A certificate rustls cannot parse (the key loaded above).
        Err(e) => Err(TlsError::Certificate {
            source: cert_source.clone(),
            reason: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocket::config::TlsConfig;

    fn self_signed() -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        (c.cert.pem(), c.signing_key.serialize_pem())
    }

    fn config(tls: Option<TlsConfig>) -> rocket::Config {
        rocket::Config {
            tls,
            ..rocket::Config::debug_default()
        }
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rocket-mmap-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn no_tls_is_ok_false() {
        assert!(!check_tls(&config(None)).unwrap());
    }

    #[test]
    fn a_matching_pair_from_files_and_from_bytes_is_ok_true() {
        let (cert, key) = self_signed();
        let d = dir("ok");
        std::fs::write(d.join("c.pem"), &cert).unwrap();
        std::fs::write(d.join("k.pem"), &key).unwrap();
        let files = TlsConfig::from_paths(d.join("c.pem"), d.join("k.pem"));
        assert!(check_tls(&config(Some(files))).unwrap());
        let bytes = TlsConfig::from_bytes(cert.as_bytes(), key.as_bytes());
        assert!(check_tls(&config(Some(bytes))).unwrap());
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn a_missing_file_is_unreadable_and_named() {
        let (_, key) = self_signed();
        let d = dir("missing");
        std::fs::write(d.join("k.pem"), &key).unwrap();
        let missing = d.join("nope.pem");
        let e = check_tls(&config(Some(TlsConfig::from_paths(
            &missing,
            d.join("k.pem"),
        ))))
        .unwrap_err();
        assert!(
            matches!(&e, TlsError::Unreadable { what: "certificate", source: TlsSource::File(p), .. } if *p == missing),
            "{e:?}"
        );
        let line = e.to_string();
        assert!(line.contains(&missing.display().to_string()), "{line}");
        assert!(!line.contains('\n'), "one line: {line}");
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn a_key_of_another_certificate_is_a_mismatch() {
        let (cert, _) = self_signed();
        let (_, other_key) = self_signed();
        let tls = TlsConfig::from_bytes(cert.as_bytes(), other_key.as_bytes());
        let e = check_tls(&config(Some(tls))).unwrap_err();
        assert!(matches!(e, TlsError::Mismatch { .. }), "{e:?}");
        assert!(e.to_string().contains("does not match"), "{e}");
    }

    #[test]
    fn swapped_or_garbage_files_are_named_for_what_they_lack() {
        let (cert, key) = self_signed();
        // The key given as the certificate: no certificate in it.
        let e = check_tls(&config(Some(TlsConfig::from_bytes(
            key.as_bytes(),
            key.as_bytes(),
        ))))
        .unwrap_err();
        assert!(matches!(e, TlsError::Certificate { .. }), "{e:?}");
        // The certificate given as the key: no key in it.
        let e = check_tls(&config(Some(TlsConfig::from_bytes(
            cert.as_bytes(),
            cert.as_bytes(),
        ))))
        .unwrap_err();
        assert!(matches!(e, TlsError::Key { .. }), "{e:?}");
        // A corrupted certificate body.
        let broken = cert.replacen("MII", "M!I", 1);
        let e = check_tls(&config(Some(TlsConfig::from_bytes(
            broken.as_bytes(),
            key.as_bytes(),
        ))))
        .unwrap_err();
        assert!(matches!(e, TlsError::Certificate { .. }), "{e:?}");
    }
}
