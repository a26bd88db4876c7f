//! The media type of a representation from its path's extension (RFC 9110 §8.3), with
//! `; charset=utf-8` for text types. Pure: the path is only looked at, never opened.

use std::borrow::Cow;

/// The content type for a path, by extension: text types get `; charset=utf-8`,
/// unknown extensions `application/octet-stream`.
pub fn content_type_for(path: &std::path::Path) -> Cow<'static, str> {
    let Some(mime) = mime_guess::from_path(path).first_raw() else {
        return Cow::Borrowed("application/octet-stream");
    };
    let texty = mime.starts_with("text/")
        || matches!(
            mime,
            "application/javascript" | "application/json" | "application/xml" | "image/svg+xml"
        );
    if texty {
        Cow::Borrowed(with_utf8_charset(mime))
    } else {
        Cow::Borrowed(mime)
    }
}

/// `"{mime}; charset=utf-8"`, interned: made once per media type and kept for the
/// life of the process, so responses borrow it instead of copying it. The set is
/// bounded by `mime_guess`'s table of types, a few hundred short strings at most.
fn with_utf8_charset(mime: &'static str) -> &'static str {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static INTERNED: OnceLock<Mutex<HashMap<&'static str, &'static str>>> = OnceLock::new();
    let mut table = INTERNED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    table
        .entry(mime)
        .or_insert_with(|| Box::leak(format!("{mime}; charset=utf-8").into_boxed_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn content_types_by_extension() {
        assert_eq!(
            content_type_for(Path::new("a.html")),
            "text/html; charset=utf-8"
        );
        assert_eq!(content_type_for(Path::new("a.wav")), "audio/wav");
        assert_eq!(content_type_for(Path::new("a.png")), "image/png");
        assert_eq!(
            content_type_for(Path::new("a.unknownext")),
            "application/octet-stream"
        );
        assert_eq!(
            content_type_for(Path::new("noext")),
            "application/octet-stream"
        );
    }
}
