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
    c.revalidate = RevalidateSetting::Word("watch".into());
    assert_eq!(c.split().unwrap().0.revalidate, Revalidate::Watch);
    c.revalidate = RevalidateSetting::Word("sometimes".into());
    assert_eq!(
        c.split().unwrap_err(),
        ConfigError::InvalidRevalidate {
            value: "sometimes".into()
        }
    );
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
#[allow(clippy::result_large_err)] // figment's Jail API returns figment::Error
fn max_background_hashes_reaches_the_cache() {
    assert_eq!(
        MmapConfig::default()
            .split()
            .unwrap()
            .0
            .max_background_hashes,
        2
    );
    figment::Jail::expect_with(|jail| {
        jail.set_env("ROCKET_MMAP_MAX_BACKGROUND_HASHES", "0");
        let c = MmapConfig::from_figment(&rocket::Config::figment()).unwrap();
        assert_eq!(c.split().unwrap().0.max_background_hashes, 0);
        jail.create_file("Rocket.toml", "[default.mmap]\nmax_background_hashes = 5\n")?;
        jail.clear_env();
        let c = MmapConfig::from_figment(&rocket::Config::figment()).unwrap();
        assert_eq!(c.split().unwrap().0.max_background_hashes, 5);
        Ok(())
    });
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail API returns figment::Error
fn max_fault_ins_reaches_the_cache_and_zero_is_refused() {
    assert_eq!(MmapConfig::default().split().unwrap().0.max_fault_ins, 32);
    figment::Jail::expect_with(|jail| {
        jail.set_env("ROCKET_MMAP_MAX_FAULT_INS", "4");
        let c = MmapConfig::from_figment(&rocket::Config::figment()).unwrap();
        assert_eq!(c.split().unwrap().0.max_fault_ins, 4);
        jail.set_env("ROCKET_MMAP_MAX_FAULT_INS", "0");
        let c = MmapConfig::from_figment(&rocket::Config::figment()).unwrap();
        let err = c.split().unwrap_err();
        assert_eq!(
            err,
            ConfigError::Zero {
                key: "max_fault_ins"
            }
        );
        assert!(
            err.to_string().contains("max_fault_ins must be > 0"),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn digest_keys_are_checked() {
    let (cache, o) = MmapConfig::default().split().unwrap();
    assert!(cache.digests_at_load.is_empty());
    assert_eq!(o.digests, default_digests());
    assert!(!o.digest_unsolicited);
    let mut c = MmapConfig {
        digests: vec!["SHA-512".into(), "sha-256".into()],
        digest_at_load: true,
        ..MmapConfig::default()
    };
    if DIGESTS_AVAILABLE {
        let (cache, o) = c.split().unwrap();
        assert_eq!(
            o.digests,
            [DigestAlgorithm::Sha512, DigestAlgorithm::Sha256]
        );
        assert_eq!(cache.digests_at_load, o.digests);
    }
    c.digests = vec!["md5".into()];
    let e = c.split().unwrap_err();
    assert_eq!(e, ConfigError::UnknownDigest { name: "md5".into() });
    assert!(e.to_string().contains("unknown algorithm \"md5\""), "{e}");
    c.digests = vec!["sha-256".into(), "Sha-256".into()];
    let e = c.split().unwrap_err();
    assert_eq!(
        e,
        ConfigError::RepeatedDigest {
            name: "Sha-256".into()
        }
    );
    assert!(e.to_string().contains("listed twice"), "{e}");
    c.digests = vec![];
    let e = c.split().unwrap_err();
    assert_eq!(
        e,
        ConfigError::NoDigestAlgorithm {
            key: "digest_at_load"
        }
    );
    assert!(
        e.to_string().contains("needs at least one algorithm"),
        "{e}"
    );
    c.digest_at_load = false;
    assert!(c.split().unwrap().1.digests.is_empty());
}

#[test]
fn sizes_take_units() {
    assert_eq!(parse_size("512k").unwrap(), 512 << 10);
    assert_eq!(parse_size(" 2M ").unwrap(), 2 << 20);
    assert_eq!(parse_size("1g").unwrap(), 1 << 30);
    assert_eq!(parse_size("1000").unwrap(), 1000);
    for bad in [
        "",
        "k",
        "1.5m",
        "-1",
        "1t",
        "1 m",
        "99999999999999999999",
        "17179869184g",
    ] {
        assert!(parse_size(bad).is_err(), "{bad:?}");
    }
    let c = MmapConfig {
        limit_rate: SizeSetting::Text("1m".into()),
        limit_rate_after: SizeSetting::Bytes(4096),
        ..MmapConfig::default()
    };
    assert_eq!(
        c.split().unwrap().1.rate_limit,
        RateLimit::new(1 << 20).after(4096)
    );
    let c = MmapConfig {
        limit_rate: SizeSetting::Text("fast".into()),
        ..MmapConfig::default()
    };
    let e = c.split().unwrap_err();
    assert_eq!(
        e,
        ConfigError::InvalidSize {
            key: Some("limit_rate".into()),
            value: "fast".into(),
            too_large: false
        }
    );
    assert_eq!(
        e.to_string(),
        "invalid mmap configuration: limit_rate = \"fast\": expected a number of bytes, \
         optionally with k, m or g (e.g. 512k)"
    );
    assert!(matches!(
        parse_size("17179869184g"),
        Err(ConfigError::InvalidSize {
            key: None,
            too_large: true,
            ..
        })
    ));
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail API returns figment::Error
fn rate_and_digest_keys_from_toml_and_env() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("ROCKET_MMAP_LIMIT_RATE", "512k");
        jail.set_env("ROCKET_MMAP_LIMIT_RATE_AFTER", "1048576");
        jail.create_file(
            "Rocket.toml",
            "[default.mmap]\ndigests = [\"sha-512\"]\ndigest_unsolicited = true\n",
        )?;
        let c = MmapConfig::from_figment(&rocket::Config::figment()).unwrap();
        assert_eq!(c.limit_rate, SizeSetting::Text("512k".into()));
        assert_eq!(c.limit_rate_after, SizeSetting::Bytes(1 << 20));
        assert_eq!(c.digests, ["sha-512"]);
        assert!(c.digest_unsolicited);
        if DIGESTS_AVAILABLE {
            let o = c.split().unwrap().1;
            assert_eq!(o.rate_limit, RateLimit::new(512 << 10).after(1 << 20));
            assert_eq!(o.digests, [DigestAlgorithm::Sha512]);
        }
        Ok(())
    });
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail API returns figment::Error
fn tag_store_key_from_toml_and_env() {
    figment::Jail::expect_with(|jail| {
        let c = MmapConfig::from_figment(&rocket::Config::figment()).unwrap();
        assert_eq!(c.tag_store, None);
        jail.create_file(
            "Rocket.toml",
            "[default.mmap]\ntag_store = \"/var/cache/rocket-mmap/tags.redb\"\n",
        )?;
        let c = MmapConfig::from_figment(&rocket::Config::figment()).unwrap();
        assert_eq!(
            c.tag_store.as_deref(),
            Some(Path::new("/var/cache/rocket-mmap/tags.redb"))
        );
        assert_eq!(c.split().is_ok(), cfg!(feature = "tag-store"));
        jail.set_env("ROCKET_MMAP_TAG_STORE", "state/tags.redb");
        let c = MmapConfig::from_figment(&rocket::Config::figment()).unwrap();
        assert_eq!(c.tag_store.as_deref(), Some(Path::new("state/tags.redb")));
        if !cfg!(feature = "tag-store") {
            let e = c.split().unwrap_err();
            assert_eq!(
                e,
                ConfigError::MissingFeature {
                    key: "tag_store",
                    feature: "tag-store"
                }
            );
            assert!(e.to_string().contains("no `tag-store` feature"), "{e}");
        }
        Ok(())
    });
}

#[test]
fn zero_bounds_are_rejected() {
    let c = MmapConfig {
        chunk_size: 0,
        ..MmapConfig::default()
    };
    assert_eq!(
        c.split().unwrap_err(),
        ConfigError::Zero { key: "chunk_size" }
    );
}
