//! A warning from the engine, which has no logger of its own (feature `tag-store`, the
//! only one whose engine code warns): the tag store's first read and write errors, and
//! the shell's warnings when it opens the store at ignition.

/// Logs `message` as a warning through `log` (Rocket's logger, when it is installed
/// and takes warnings), else prints it on stderr, so that it is never lost.
pub(crate) fn warn(message: &str) {
    if log::log_enabled!(log::Level::Warn) {
        log::warn!("{message}");
    } else {
        eprintln!("warning: {message}");
    }
}
