//! Configuration from Rocket's figment (`Rocket.toml`, `ROCKET_MMAP_*`) and the
//! fairing that installs the managed [`Mmap`] state.
//!
//! Every key lives under `mmap` and is optional; each can also be set from the
//! environment as `ROCKET_MMAP_<KEY>` (e.g. `ROCKET_MMAP_CHUNK_SIZE=262144`) or all at
//! once as `ROCKET_MMAP={chunk_size=262144}`:
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `max_entries` | `1024` | most files kept mapped |
//! | `max_bytes` | `17179869184` (16 GiB) | most mapped bytes kept (address space) |
//! | `revalidate` | `"always"` | `"always"` (`stat` per request), `"never"` (immutable), or a number of milliseconds between checks |
//! | `max_parts` | `64` | most parts of a multipart/byteranges response; more → 200 |
//! | `merge_gap` | `80` | ranges at most this many bytes apart are merged |
//! | `chunk_size` | `65536` | Rocket body chunk size for large bodies |
//! | `cache_control` | none | `Cache-Control` for every file |
//! | `cache_control_by_extension` | `{}` | per extension, e.g. `{ html = "no-cache" }` |
//!
//! ```toml
//! [default.mmap]
//! revalidate = 250
//! cache_control = "public, max-age=3600"
//! cache_control_by_extension = { html = "no-cache" }
//! ```

use std::collections::HashMap;
use std::time::Duration;

use rocket::fairing::{Fairing, Info, Kind};
use rocket::serde::Deserialize;
use rocket::{Build, Rocket};

use crate::engine::cache::{CacheConfig, Revalidate};
use crate::semantics::range::{RangeLimits, DEFAULT_MAX_PARTS, DEFAULT_MERGE_GAP};
use crate::shell::options::{ResponseOptions, DEFAULT_CHUNK_SIZE};
use crate::shell::request::OriginalMethod;
use crate::shell::state::Mmap;

/// The `revalidate` key: `"always"`, `"never"`, or milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(crate = "rocket::serde", untagged)]
pub enum RevalidateSetting {
    /// Milliseconds between checks of one file.
    Millis(u64),
    /// `"always"` or `"never"`.
    Word(String),
}

/// The `mmap` section of the Rocket configuration. See the module docs for the keys.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(crate = "rocket::serde", default)]
pub struct MmapConfig {
    /// Most files kept mapped.
    pub max_entries: usize,
    /// Most mapped bytes kept.
    pub max_bytes: u64,
    /// When a cached file is compared with the disk.
    pub revalidate: RevalidateSetting,
    /// Most parts of a multipart/byteranges response.
    pub max_parts: usize,
    /// Merge distance for ranges.
    pub merge_gap: u64,
    /// Rocket body chunk size.
    pub chunk_size: usize,
    /// `Cache-Control` for every file, unless overridden by extension.
    pub cache_control: Option<String>,
    /// `Cache-Control` per file extension (without the dot, case-insensitive).
    pub cache_control_by_extension: HashMap<String, String>,
}

impl Default for MmapConfig {
    fn default() -> Self {
        let cache = CacheConfig::default();
        MmapConfig {
            max_entries: cache.max_entries,
            max_bytes: cache.max_bytes,
            revalidate: RevalidateSetting::Word("always".into()),
            max_parts: DEFAULT_MAX_PARTS,
            merge_gap: DEFAULT_MERGE_GAP,
            chunk_size: DEFAULT_CHUNK_SIZE,
            cache_control: None,
            cache_control_by_extension: HashMap::new(),
        }
    }
}

/// A configuration value that makes no sense.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid mmap configuration: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

impl MmapConfig {
    /// Reads the `mmap` section from a Rocket figment (`Rocket.toml`, `ROCKET_MMAP={…}`)
    /// plus the `ROCKET_MMAP_<KEY>` environment variables, which Rocket's own
    /// `ROCKET_` provider does not nest (it would read `ROCKET_MMAP_CHUNK_SIZE` as a
    /// top-level `mmap_chunk_size`). Missing keys take their defaults.
    ///
    /// # Errors
    /// [`ConfigError`] if a value has the wrong type.
    pub fn from_figment(figment: &rocket::figment::Figment) -> Result<MmapConfig, ConfigError> {
        use rocket::figment::providers::Env;
        let env = Env::prefixed("ROCKET_MMAP_")
            .map(|key| format!("mmap.{}", key.as_str()).into())
            .global();
        let figment = figment.clone().merge(env);
        if figment.find_value("mmap").is_err() {
            return Ok(MmapConfig::default());
        }
        figment
            .extract_inner("mmap")
            .map_err(|e| ConfigError(e.to_string()))
    }

    /// Checks the values and splits them into the cache's and the responses' parts.
    ///
    /// # Errors
    /// [`ConfigError`] for zero bounds, a zero chunk size or an unknown `revalidate`.
    pub fn split(&self) -> Result<(CacheConfig, ResponseOptions), ConfigError> {
        let revalidate = match &self.revalidate {
            RevalidateSetting::Millis(0) => Revalidate::Always,
            RevalidateSetting::Millis(ms) => Revalidate::Every(Duration::from_millis(*ms)),
            RevalidateSetting::Word(w) if w.eq_ignore_ascii_case("always") => Revalidate::Always,
            RevalidateSetting::Word(w) if w.eq_ignore_ascii_case("never") => Revalidate::Never,
            RevalidateSetting::Word(w) => {
                return Err(ConfigError(format!(
                    "revalidate = {w:?}: expected \"always\", \"never\" or milliseconds"
                )))
            }
        };
        if self.max_entries == 0 || self.max_bytes == 0 {
            return Err(ConfigError("max_entries and max_bytes must be > 0".into()));
        }
        if self.max_parts == 0 {
            return Err(ConfigError("max_parts must be > 0".into()));
        }
        if self.chunk_size == 0 {
            return Err(ConfigError("chunk_size must be > 0".into()));
        }
        let by_ext = self
            .cache_control_by_extension
            .iter()
            .map(|(k, v)| (k.trim_start_matches('.').to_ascii_lowercase(), v.clone()))
            .collect();
        Ok((
            CacheConfig {
                max_entries: self.max_entries,
                max_bytes: self.max_bytes,
                revalidate,
            },
            ResponseOptions {
                limits: RangeLimits {
                    max_parts: self.max_parts,
                    merge_gap: self.merge_gap,
                },
                chunk_size: self.chunk_size,
                cache_control: self.cache_control.clone(),
                cache_control_by_extension: by_ext,
            },
        ))
    }
}

impl Mmap {
    /// State from a configuration section.
    ///
    /// # Errors
    /// As [`MmapConfig::split`].
    pub fn from_config(config: &MmapConfig) -> Result<Mmap, ConfigError> {
        let (cache, options) = config.split()?;
        Ok(Mmap::new(cache, options))
    }

    /// A fairing that reads the `mmap` section of Rocket's configuration and manages
    /// the resulting state (ignition fails with a clear message on bad values). If the
    /// application already manages an `Mmap`, that one is kept. It also records each
    /// request's method before routing, so that a HEAD routed to a `#[get]` route
    /// still ignores `Range` (RFC 9110 §14.2).
    pub fn fairing() -> MmapFairing {
        MmapFairing
    }
}

/// See [`Mmap::fairing`].
#[derive(Debug, Clone, Copy)]
pub struct MmapFairing;

#[rocket::async_trait]
impl Fairing for MmapFairing {
    fn info(&self) -> Info {
        Info {
            name: "rocket-mmap",
            kind: Kind::Ignite | Kind::Request,
        }
    }

    /// Records a HEAD before routing: Rocket turns a HEAD into a GET when it routes it
    /// to a GET route, and Range must be ignored for HEAD (RFC 9110 §14.2). Other
    /// methods are what they say; recording them would cost every request an entry
    /// in Rocket's request-local cache.
    async fn on_request(&self, req: &mut rocket::Request<'_>, _data: &mut rocket::Data<'_>) {
        if req.method() == rocket::http::Method::Head {
            req.local_cache(|| OriginalMethod(rocket::http::Method::Head));
        }
    }

    async fn on_ignite(&self, rocket: Rocket<Build>) -> rocket::fairing::Result {
        if rocket.state::<Mmap>().is_some() {
            return Ok(rocket);
        }
        let config = match MmapConfig::from_figment(rocket.figment()) {
            Ok(c) => c,
            Err(e) => {
                rocket::error!("rocket-mmap: {e}");
                return Err(rocket);
            }
        };
        match Mmap::from_config(&config) {
            Ok(state) => Ok(rocket.manage(state)),
            Err(e) => {
                rocket::error!("rocket-mmap: {e}");
                Err(rocket)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn defaults_split_cleanly() {
        let (cache, opts) = MmapConfig::default().split().unwrap();
        assert_eq!(cache, CacheConfig::default());
        assert_eq!(opts, ResponseOptions::default());
    }

    #[test]
    fn revalidate_words_and_millis() {
        let mut c = MmapConfig {
            revalidate: RevalidateSetting::Millis(250),
            ..MmapConfig::default()
        };
        assert_eq!(
            c.split().unwrap().0.revalidate,
            Revalidate::Every(Duration::from_millis(250))
        );
        c.revalidate = RevalidateSetting::Word("Never".into());
        assert_eq!(c.split().unwrap().0.revalidate, Revalidate::Never);
        c.revalidate = RevalidateSetting::Word("sometimes".into());
        assert!(c.split().is_err());
    }

    #[test]
    fn cache_control_by_extension_overrides_default() {
        let mut c = MmapConfig {
            cache_control: Some("public, max-age=60".into()),
            ..MmapConfig::default()
        };
        c.cache_control_by_extension
            .insert(".HTML".into(), "no-cache".into());
        let (_, o) = c.split().unwrap();
        assert_eq!(
            o.cache_control_for(Some(Path::new("a/b.html"))),
            Some("no-cache")
        );
        assert_eq!(
            o.cache_control_for(Some(Path::new("a/b.css"))),
            Some("public, max-age=60")
        );
        assert_eq!(o.cache_control_for(None), Some("public, max-age=60"));
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns figment::Error
    fn rocket_mmap_key_variables_are_read() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("ROCKET_MMAP_CHUNK_SIZE", "1234");
            jail.set_env("ROCKET_MMAP_REVALIDATE", "never");
            jail.create_file("Rocket.toml", "[default.mmap]\nmax_parts = 7\n")?;
            let c = MmapConfig::from_figment(&rocket::Config::figment()).unwrap();
            assert_eq!(c.chunk_size, 1234);
            assert_eq!(c.max_parts, 7);
            assert_eq!(c.revalidate, RevalidateSetting::Word("never".into()));
            Ok(())
        });
    }

    #[test]
    fn zero_bounds_are_rejected() {
        let c = MmapConfig {
            chunk_size: 0,
            ..MmapConfig::default()
        };
        assert!(c.split().is_err());
    }
}
