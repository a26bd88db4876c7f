//! The crate's managed state in a Rocket application: the cache and the response
//! options, found by responders and file servers in Rocket's state.
//!
//! It is made from configuration by [`Mmap::fairing`] (in `config`), and
//! [`Mmap::open`] (beside the responder it returns) opens a file through it.

use rocket::{Ignite, Rocket};

use crate::engine::cache::{Cache, CacheConfig};
use crate::shell::options::ResponseOptions;

/// The crate's managed state: the cache and the response options. Installed by
/// [`Mmap::fairing`] (from configuration), or managed by the application itself
/// (beside the fairing, which keeps it); responders and file servers find it in
/// Rocket's state. There is no silent default: a route returning an
/// [`MmapFile`](crate::MmapFile) or a [`StreamedFile`](crate::StreamedFile) refuses
/// to launch without the fairing (a Rocket `Sentinel`, with a message naming
/// `Mmap::fairing()`), and a [`FileServer`](crate::FileServer) without the state
/// answers 500 and logs why.
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

    /// The state managed by `rocket`, if any (see the type's docs).
    pub fn of<P: rocket::Phase>(rocket: &Rocket<P>) -> Option<&Mmap> {
        rocket.state::<Mmap>()
    }
}

/// Whether `rocket` lacks what the crate's responders need: the [`Mmap`] state, and
/// the fairing that records HEAD before routing (RFC 9110 §14.2: a HEAD routed to a
/// GET route must still ignore `Range`). Logs what is missing, for the sentinels of
/// [`MmapFile`](crate::MmapFile) and [`StreamedFile`](crate::StreamedFile).
pub(crate) fn missing_fairing(rocket: &Rocket<Ignite>, who: &str) -> bool {
    let attached = rocket.state::<FairingAttached>().is_some();
    let managed = rocket.state::<Mmap>().is_some();
    if attached && managed {
        return false;
    }
    rocket::error!(
        "rocket-mmap: a route returns {who}, which needs `.attach(Mmap::fairing())`: {}",
        if attached {
            "the fairing is attached but no `Mmap` state is managed"
        } else {
            "it manages the cache and the options, and records HEAD before routing"
        }
    );
    true
}

/// Managed by [`Mmap::fairing`] at ignition, so that the sentinels can tell it was
/// attached.
pub(crate) struct FairingAttached;
