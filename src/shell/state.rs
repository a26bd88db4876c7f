//! The crate's managed state in a Rocket application: the cache and the response
//! options, found by responders and file servers in Rocket's state.
//!
//! It is made from configuration by [`Mmap::fairing`] (in `config`), and
//! [`Mmap::open`] (beside the responder it returns) opens a file through it.

use std::sync::OnceLock;

use rocket::Rocket;

use crate::engine::cache::{Cache, CacheConfig};
use crate::shell::options::ResponseOptions;

/// The crate's managed state: the cache and the response options. Installed by
/// [`Mmap::fairing`] (from configuration), or managed by the application itself; responders and file
/// servers find it in Rocket's state, and fall back to a default instance otherwise.
///
/// ```rust,no_run
/// # #[macro_use] extern crate rocket;
/// use rocket::State;
/// use rocket_mmap::cache::CacheConfig;
/// use rocket_mmap::{CacheError, Mmap, MmapFile, ResponseOptions};
///
/// #[get("/files/<name>")]
/// async fn file(name: &str, mmap: &State<Mmap>) -> Result<MmapFile, CacheError> {
///     mmap.open(format!("files/{name}")).await
/// }
///
/// #[launch]
/// fn rocket() -> _ {
///     let cache = CacheConfig {
///         max_entries: 256,
///         ..CacheConfig::default()
///     };
///     rocket::build()
///         .manage(Mmap::new(cache, ResponseOptions::default()))
///         .attach(Mmap::fairing()) // keeps the managed state; records HEAD before routing
///         .mount("/", routes![file])
/// }
/// ```
#[derive(Debug)]
pub struct Mmap {
    cache: Cache,
    options: ResponseOptions,
}

impl Default for Mmap {
    fn default() -> Self {
        Mmap::new(CacheConfig::default(), ResponseOptions::default())
    }
}

impl Mmap {
    /// State with the given cache bounds and response options.
    pub fn new(cache: CacheConfig, options: ResponseOptions) -> Mmap {
        Mmap {
            cache: Cache::new(cache),
            options,
        }
    }

    /// State over a cache made elsewhere (one with a tag store, say).
    pub(crate) fn with_cache(cache: Cache, options: ResponseOptions) -> Mmap {
        Mmap { cache, options }
    }

    /// The cache.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The response options.
    pub fn options(&self) -> &ResponseOptions {
        &self.options
    }

    /// The state managed by `rocket`, or the process-wide default instance.
    pub fn of(rocket: &Rocket<rocket::Orbit>) -> &Mmap {
        rocket.state::<Mmap>().unwrap_or_else(|| Mmap::global())
    }

    /// The process-wide default instance (default configuration), used when no `Mmap`
    /// is managed.
    pub fn global() -> &'static Mmap {
        static GLOBAL: OnceLock<Mmap> = OnceLock::new();
        GLOBAL.get_or_init(Mmap::default)
    }
}
