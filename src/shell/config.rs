//! Configuration from Rocket's figment (`Rocket.toml`, `ROCKET_MMAP_*`) and the
//! fairing that installs the managed [`Mmap`] state.
//!
//! The keys are in [`MmapConfig`]'s docs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use rocket::fairing::{Fairing, Info, Kind};
use rocket::serde::Deserialize;
use rocket::{Build, Rocket};

use crate::engine::cache::{Cache, CacheConfig, Revalidate};
use crate::engine::digest::DIGESTS_AVAILABLE;
use crate::engine::pace::RateLimit;
use crate::semantics::digest::DigestAlgorithm;
use crate::semantics::range::{RangeLimits, DEFAULT_MAX_PARTS, DEFAULT_MERGE_GAP};
use crate::shell::options::{default_digests, ResponseOptions, DEFAULT_CHUNK_SIZE};
use crate::shell::request::OriginalMethod;
use crate::shell::state::{FairingAttached, Mmap};

/// The `revalidate` key: `"always"`, `"never"`, `"watch"`, or milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(crate = "rocket::serde", untagged)]
pub enum RevalidateSetting {
    /// Milliseconds between checks of one file.
    Millis(u64),
    /// `"always"`, `"never"` or `"watch"`.
    Word(String),
}

/// A byte count: an integer, or a string with an optional unit (`"512k"`, `"2m"`,
/// `"1g"`; see [`parse_size`]).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(crate = "rocket::serde", untagged)]
pub enum SizeSetting {
    /// Bytes.
    Bytes(u64),
    /// A number with an optional unit.
    Text(String),
}

impl SizeSetting {
    /// The number of bytes.
    ///
    /// # Errors
    /// [`ConfigError`] if the text is not a size (`key` names the setting).
    pub fn bytes(&self, key: &str) -> Result<u64, ConfigError> {
        match self {
            SizeSetting::Bytes(n) => Ok(*n),
            SizeSetting::Text(t) => parse_size(t).map_err(|e| e.for_key(key)),
        }
    }
}

/// Parses a byte count as nginx does: digits with an optional unit `k`, `m` or `g`
/// (case-insensitive; KiB, MiB, GiB): `"512k"` is 524288.
///
/// # Errors
/// [`ConfigError`] for anything else, or a count beyond `u64`.
pub fn parse_size(text: &str) -> Result<u64, ConfigError> {
    let t = text.trim();
    let (digits, shift) = match t.as_bytes().last().map(u8::to_ascii_lowercase) {
        Some(b'k') => (&t[..t.len() - 1], 10),
        Some(b'm') => (&t[..t.len() - 1], 20),
        Some(b'g') => (&t[..t.len() - 1], 30),
        _ => (t, 0),
    };
    let bad = |too_large| ConfigError::InvalidSize {
        key: None,
        value: text.to_owned(),
        too_large,
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(false));
    }
    // Only digits: a parse error is an overflow.
    let n: u64 = digits.parse().map_err(|_| bad(true))?;
    n.checked_mul(1 << shift).ok_or_else(|| bad(true))
}

/// The `mmap` section of the Rocket configuration.
///
/// Every key lives under `mmap` and is optional; each can also be set from the
/// environment as `ROCKET_MMAP_<KEY>` (e.g. `ROCKET_MMAP_CHUNK_SIZE=262144`) or all at
/// once as `ROCKET_MMAP={chunk_size=262144}`:
///
/// | key | default | meaning |
/// |---|---|---|
/// | `max_entries` | `65536` | most files kept (mapped, or read into memory when at most 64 KiB) |
/// | `max_bytes` | `17179869184` (16 GiB) | most mapped bytes kept (address space) |
/// | `max_memory` | 1/16 of the memory the process may use, at most 256 MiB | most memory the kept files hold: the small files' bytes, and about 1 KiB per file (see [`CacheConfig::max_memory`]); e.g. `"1g"` |
/// | `max_mappings` | `16384` | most mappings kept (files over 64 KiB); never more than a quarter of `vm.max_map_count` |
/// | `max_fault_ins` | `32` | most fault-ins (pages not in memory, read in on the blocking pool before a body copies them) in flight at once |
/// | `revalidate` | `"always"` | `"always"` (`stat` per request), `"never"` (immutable), `"watch"` (inotify says which files changed; feature `watch`, Linux), or a number of milliseconds between checks |
/// | `max_parts` | `64` | most parts of a multipart/byteranges response; more → 200 |
/// | `merge_gap` | `80` | ranges at most this many bytes apart are merged |
/// | `chunk_size` | `65536` | Rocket body chunk size for large bodies |
/// | `cache_control` | none | `Cache-Control` for every file |
/// | `cache_control_by_extension` | `{}` | per extension, e.g. `{ html = "no-cache" }` |
/// | `digests` | `["sha-256", "sha-512"]` | digest algorithms offered to `Want-Repr-Digest` / `Want-Digest`, preferred first; `[]`: none |
/// | `digest_at_load` | `false` | compute every digest when a file is loaded (with `--warm`: before listening), not on the first request that asks |
/// | `max_background_hashes` | `2` | most files hashed at once for their ETags, in the background after their first response; `0`: only when a response needs the tag (see [`CacheConfig::max_background_hashes`]) |
/// | `digest_unsolicited` | `false` | send `Repr-Digest` (first of `digests`) on every 200/206, asked or not |
/// | `limit_rate` | `0` (off) | bytes per second per response, e.g. `1048576` or `"1m"` (`k`, `m`, `g`: KiB, MiB, GiB) |
/// | `limit_rate_after` | `0` | bytes sent at full speed before `limit_rate` applies, e.g. `"2m"` |
/// | `ranges_await_tag` | `false` | make every `Range` wait for the file's strong `ETag` (for origins behind a slicing cache, see [`ResponseOptions::ranges_await_tag`]) |
/// | `max_remembered_versions` | `65536` | file versions whose tags and digests are remembered in memory after their entries are evicted (about 240 bytes each, 470 with both digests); `0`: none |
/// | `tag_store` | none (off) | a file where ETags and digests are kept across restarts, e.g. `"/var/cache/rocket-mmap/tags.redb"` (feature `tag-store`) |
///
/// ```toml
/// [default.mmap]
/// revalidate = 250
/// cache_control = "public, max-age=3600"
/// cache_control_by_extension = { html = "no-cache" }
/// digests = ["sha-256"]
/// limit_rate = "512k"
/// limit_rate_after = "2m"
/// ```
///
/// **How the three configuration types relate.** `MmapConfig` is the whole `mmap`
/// section as one value: what `Rocket.toml`, `ROCKET_MMAP_*` and the binary's flags
/// set, every key checked by [`MmapConfig::split`]. `split` hands its two halves to
/// their owners: a [`CacheConfig`] (the engine's cache: bounds, revalidation,
/// hashing; also what an application outside Rocket configures, alone) and a
/// [`ResponseOptions`] (how the Rocket shell shapes responses: ranges, chunk size,
/// caching headers, digests, rate limits, `ranges_await_tag`). An [`Mmap`] state holds
/// one cache made from the first and the second as they are; `tag_store` is the one
/// key that is neither: [`Mmap::from_config`] opens it and gives it to the cache.
///
/// [`Mmap::fairing`] reads it; an application can also make one in code:
///
/// ```rust
/// use rocket_mmap::setup::{RevalidateSetting, SizeSetting};
/// use rocket_mmap::{Mmap, MmapConfig};
///
/// let config = MmapConfig {
///     revalidate: RevalidateSetting::Millis(250),
///     limit_rate: SizeSetting::Text("512k".into()),
///     cache_control: Some("public, max-age=3600".into()),
///     ..MmapConfig::default()
/// };
/// let (_cache, options) = config.split()?;
/// assert_eq!(options.rate_limit.bytes_per_second, 512 << 10);
/// let state = Mmap::from_config(&config)?; // to `manage` instead of `Mmap::fairing()`
/// # Ok::<(), rocket_mmap::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(crate = "rocket::serde", default)]
pub struct MmapConfig {
    /// Most files kept.
    pub max_entries: usize,
    /// Most mapped bytes kept.
    pub max_bytes: u64,
    /// Most memory the kept files hold (see [`CacheConfig::max_memory`]).
    pub max_memory: SizeSetting,
    /// Most mappings kept (see [`CacheConfig::max_mappings`]).
    pub max_mappings: usize,
    /// Most fault-ins in flight at once (see [`CacheConfig::max_fault_ins`]).
    pub max_fault_ins: usize,
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
    /// Digest algorithms offered (`"sha-256"`, `"sha-512"`), preferred first.
    pub digests: Vec<String>,
    /// Compute the digests when a file is loaded.
    pub digest_at_load: bool,
    /// Send `Repr-Digest` on every 200/206, asked or not.
    pub digest_unsolicited: bool,
    /// Most files hashed at once for their ETags.
    pub max_background_hashes: usize,
    /// Bytes per second per response; 0: no limit.
    pub limit_rate: SizeSetting,
    /// Bytes sent at full speed before `limit_rate` applies.
    pub limit_rate_after: SizeSetting,
    /// Every `Range` waits for the file's strong `ETag` (see
    /// [`ResponseOptions::ranges_await_tag`]).
    pub ranges_await_tag: bool,
    /// File versions whose tags are remembered after their entries are evicted (see
    /// [`CacheConfig::max_remembered_versions`]).
    pub max_remembered_versions: usize,
    /// Where the tag store keeps ETags and digests across restarts (feature
    /// `tag-store`); `None` (the default): no store, every file version is hashed once
    /// per run.
    pub tag_store: Option<PathBuf>,
}

impl Default for MmapConfig {
    fn default() -> Self {
        let cache = CacheConfig::default();
        MmapConfig {
            max_entries: cache.max_entries,
            max_bytes: cache.max_bytes,
            max_memory: SizeSetting::Bytes(cache.max_memory),
            max_mappings: cache.max_mappings,
            max_fault_ins: cache.max_fault_ins,
            revalidate: RevalidateSetting::Word("always".into()),
            max_parts: DEFAULT_MAX_PARTS,
            merge_gap: DEFAULT_MERGE_GAP,
            chunk_size: DEFAULT_CHUNK_SIZE,
            cache_control: None,
            cache_control_by_extension: HashMap::new(),
            digests: default_digests()
                .iter()
                .map(|a| a.key().to_owned())
                .collect(),
            digest_at_load: false,
            digest_unsolicited: false,
            max_background_hashes: cache.max_background_hashes,
            limit_rate: SizeSetting::Bytes(0),
            limit_rate_after: SizeSetting::Bytes(0),
            ranges_await_tag: false,
            max_remembered_versions: cache.max_remembered_versions,
            tag_store: None,
        }
    }
}

/// What is wrong with an `mmap` configuration: one variant per mistake, with the key
/// and the value it is about. Its `Display` is one line that names both
/// (`invalid mmap configuration: revalidate = "sometimes": expected …`).
///
/// ```rust
/// use rocket_mmap::{ConfigError, MmapConfig};
///
/// let config = MmapConfig { max_parts: 0, ..MmapConfig::default() };
/// match config.split() {
///     Err(ConfigError::Zero { key }) => assert_eq!(key, "max_parts"),
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The `mmap` section could not be read from Rocket's configuration: a value of
    /// the wrong type, or a `ROCKET_MMAP` that does not parse. Figment's message,
    /// which names the key and where its value came from.
    Unreadable(String),
    /// `revalidate` is neither `"always"`, `"never"`, `"watch"` nor a number of
    /// milliseconds.
    InvalidRevalidate {
        /// The value given.
        value: String,
    },
    /// A bound that must be at least 1 is 0 (`max_entries`, `max_bytes`,
    /// `max_fault_ins`, `max_parts` or `chunk_size`).
    Zero {
        /// The key.
        key: &'static str,
    },
    /// A size (`limit_rate`, `limit_rate_after`, or text given to [`parse_size`]) that
    /// is not a number of bytes with an optional unit `k`, `m` or `g`, or is more than
    /// `u64::MAX` bytes.
    InvalidSize {
        /// The key, when the size is a key's value.
        key: Option<String>,
        /// The text given.
        value: String,
        /// Whether it is a size, but more than `u64::MAX` bytes.
        too_large: bool,
    },
    /// A name in `digests` that is not a supported algorithm (`"sha-256"`,
    /// `"sha-512"`).
    UnknownDigest {
        /// The name given.
        name: String,
    },
    /// An algorithm listed twice in `digests`.
    RepeatedDigest {
        /// The name given the second time.
        name: String,
    },
    /// `digest_at_load` or `digest_unsolicited` with no algorithm in `digests`.
    NoDigestAlgorithm {
        /// The switch that needs one.
        key: &'static str,
    },
    /// A key that needs a crate feature this build does not have: `digests` without
    /// `digest`, `tag_store` without `tag-store`.
    MissingFeature {
        /// The key.
        key: &'static str,
        /// The feature it needs.
        feature: &'static str,
    },
}

impl ConfigError {
    /// An [`InvalidSize`](ConfigError::InvalidSize) from [`parse_size`] attributed to
    /// `key`; any other error as it is.
    fn for_key(self, key: &str) -> ConfigError {
        match self {
            ConfigError::InvalidSize {
                key: None,
                value,
                too_large,
            } => ConfigError::InvalidSize {
                key: Some(key.to_owned()),
                value,
                too_large,
            },
            other => other,
        }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("invalid mmap configuration: ")?;
        match self {
            ConfigError::Unreadable(message) => f.write_str(message),
            ConfigError::InvalidRevalidate { value } => write!(
                f,
                "revalidate = {value:?}: expected \"always\", \"never\", \"watch\" or milliseconds"
            ),
            ConfigError::Zero { key } => write!(f, "{key} must be > 0"),
            ConfigError::InvalidSize {
                key,
                value,
                too_large,
            } => {
                match key {
                    Some(key) => write!(f, "{key} = {value:?}: ")?,
                    None => write!(f, "{value:?}: ")?,
                }
                if *too_large {
                    write!(f, "more than {} bytes", u64::MAX)
                } else {
                    f.write_str(SIZE_SYNTAX)
                }
            }
            ConfigError::UnknownDigest { name } => write!(
                f,
                "digests: unknown algorithm {name:?}; supported: \"sha-256\", \"sha-512\""
            ),
            ConfigError::RepeatedDigest { name } => {
                write!(f, "digests: {name:?} is listed twice")
            }
            ConfigError::NoDigestAlgorithm { key } => {
                write!(f, "{key} needs at least one algorithm in digests")
            }
            ConfigError::MissingFeature { key, feature } => write!(
                f,
                "{key}: this build has no `{feature}` feature; {}",
                if *key == "digests" {
                    "set digests = [] or enable it"
                } else {
                    "remove the key or enable it"
                }
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

/// What a size looks like, in [`ConfigError`]'s messages.
const SIZE_SYNTAX: &str = "expected a number of bytes, optionally with k, m or g (e.g. 512k)";

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
            .map_err(|e| ConfigError::Unreadable(e.to_string()))
    }

    /// Checks the values and splits them into the cache's and the responses' parts.
    ///
    /// # Errors
    /// [`ConfigError`] for zero bounds, a zero chunk size, an unknown `revalidate`, an
    /// unknown or repeated digest algorithm (or any without the `digest` feature), a
    /// digest switch with no algorithm, a size that does not parse, or a `tag_store`
    /// in a build without the `tag-store` feature.
    pub fn split(&self) -> Result<(CacheConfig, ResponseOptions), ConfigError> {
        let revalidate = match &self.revalidate {
            RevalidateSetting::Millis(0) => Revalidate::Always,
            RevalidateSetting::Millis(ms) => Revalidate::Every(Duration::from_millis(*ms)),
            RevalidateSetting::Word(w) if w.eq_ignore_ascii_case("always") => Revalidate::Always,
            RevalidateSetting::Word(w) if w.eq_ignore_ascii_case("never") => Revalidate::Never,
            RevalidateSetting::Word(w) if w.eq_ignore_ascii_case("watch") => Revalidate::Watch,
            RevalidateSetting::Word(w) => {
                return Err(ConfigError::InvalidRevalidate { value: w.clone() })
            }
        };
        for (key, zero) in [
            ("max_entries", self.max_entries == 0),
            ("max_bytes", self.max_bytes == 0),
            ("max_mappings", self.max_mappings == 0),
            ("max_fault_ins", self.max_fault_ins == 0),
            ("max_parts", self.max_parts == 0),
            ("chunk_size", self.chunk_size == 0),
        ] {
            if zero {
                return Err(ConfigError::Zero { key });
            }
        }
        let digests = self.digest_algorithms()?;
        if digests.is_empty() {
            for (key, on) in [
                ("digest_at_load", self.digest_at_load),
                ("digest_unsolicited", self.digest_unsolicited),
            ] {
                if on {
                    return Err(ConfigError::NoDigestAlgorithm { key });
                }
            }
        }
        if self.tag_store.is_some() && !cfg!(feature = "tag-store") {
            return Err(ConfigError::MissingFeature {
                key: "tag_store",
                feature: "tag-store",
            });
        }
        let max_memory = self.max_memory.bytes("max_memory")?;
        if max_memory == 0 {
            return Err(ConfigError::Zero { key: "max_memory" });
        }
        let rate_limit = RateLimit {
            bytes_per_second: self.limit_rate.bytes("limit_rate")?,
            after: self.limit_rate_after.bytes("limit_rate_after")?,
        };
        let by_ext = self
            .cache_control_by_extension
            .iter()
            .map(|(k, v)| (k.trim_start_matches('.').to_ascii_lowercase(), v.clone()))
            .collect();
        Ok((
            CacheConfig {
                max_entries: self.max_entries,
                max_bytes: self.max_bytes,
                max_memory,
                max_mappings: self.max_mappings,
                max_fault_ins: self.max_fault_ins,
                revalidate,
                digests_at_load: if self.digest_at_load {
                    digests.clone()
                } else {
                    Vec::new()
                },
                max_background_hashes: self.max_background_hashes,
                max_remembered_versions: self.max_remembered_versions,
            },
            ResponseOptions {
                limits: RangeLimits {
                    max_parts: self.max_parts,
                    merge_gap: self.merge_gap,
                },
                chunk_size: self.chunk_size,
                cache_control: self.cache_control.clone(),
                cache_control_by_extension: by_ext,
                digests,
                digest_unsolicited: self.digest_unsolicited,
                rate_limit,
                ranges_await_tag: self.ranges_await_tag,
            },
        ))
    }

    /// The `digests` key as algorithms, checked.
    fn digest_algorithms(&self) -> Result<Vec<DigestAlgorithm>, ConfigError> {
        let mut out = Vec::new();
        for name in &self.digests {
            let Some(a) = DigestAlgorithm::from_name(name.trim()) else {
                return Err(ConfigError::UnknownDigest { name: name.clone() });
            };
            if out.contains(&a) {
                return Err(ConfigError::RepeatedDigest { name: name.clone() });
            }
            out.push(a);
        }
        if !out.is_empty() && !DIGESTS_AVAILABLE {
            return Err(ConfigError::MissingFeature {
                key: "digests",
                feature: "digest",
            });
        }
        Ok(out)
    }
}

impl Mmap {
    /// State from a configuration section.
    ///
    /// # Errors
    /// As [`MmapConfig::split`].
    pub fn from_config(config: &MmapConfig) -> Result<Mmap, ConfigError> {
        let (cache, options) = config.split()?;
        let cache = Cache::new(cache);
        // A store that cannot be opened is a warning: the server serves on, hashing.
        #[cfg(feature = "tag-store")]
        let cache = match config
            .tag_store
            .as_deref()
            .and_then(crate::shell::tag_store::open_tag_store)
        {
            Some(store) => cache.with_tag_store(store),
            None => cache,
        };
        Ok(Mmap::with_cache(cache, options))
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

    async fn on_ignite(&self, mut rocket: Rocket<Build>) -> rocket::fairing::Result {
        if rocket.state::<FairingAttached>().is_none() {
            rocket = rocket.manage(FairingAttached);
        }
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
            Ok(state) => {
                let cache = state.cache();
                if cache.config().revalidate == Revalidate::Watch && !cache.is_watching() {
                    rocket::warn!(
                        "rocket-mmap: revalidate = \"watch\" but no inotify watcher could be made \
                         (not Linux, feature `watch` off, or the inotify instance limit reached): \
                         every request takes a stat, as under \"always\""
                    );
                }
                Ok(rocket.manage(state))
            }
            Err(e) => {
                rocket::error!("rocket-mmap: {e}");
                Err(rocket)
            }
        }
    }
}

#[cfg(test)]
mod tests;
