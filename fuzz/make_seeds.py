#!/usr/bin/env python3
"""Writes the seed corpus of the range, conditionals and want_digest fuzz targets.

The encodings are those of `rocket_mmap::fuzzing` (src/fuzzing.rs):

* range: a 12-byte prefix (length mode, big-endian u64, max_parts, merge_gap,
  content-type length), then the Range header value;
* conditionals: fields separated by 0xFF bytes: If-Match, If-None-Match,
  If-Modified-Since, If-Unmodified-Since, If-Range, current ETag, method byte
  (0 GET, 1 HEAD, 2 other), has_range byte (1 or 0), Last-Modified, now;
* want_digest: a flags byte, then Want-Repr-Digest, Want-Digest and digest bytes
  separated by 0xFF (see `digest_seed`).

Run it from anywhere: `python3 fuzz/make_seeds.py`. It rewrites the seed files only
(names are descriptive); tests/fuzz_corpus.rs replays whatever is in the directories.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
U64_MAX = (1 << 64) - 1


def range_seed(length, header, max_parts=64, gap=80, ct=24):
    if isinstance(header, str):
        header = header.encode()
    if length == U64_MAX:
        mode, raw = 7, 0
    elif length <= 300:
        mode, raw = 0, length
    elif length <= 65536:
        mode, raw = 5, length
    else:
        mode, raw = 6, length
    assert 1 <= max_parts <= 80 and 0 <= gap <= 200 and 0 <= ct < 64
    prefix = bytes([mode]) + struct.pack(">Q", raw) + bytes([max_parts - 1, gap, ct])
    return prefix + header


MIB = 1 << 20
RANGE = {
    "typical_bytes_0-1023": range_seed(MIB, "bytes=0-1023"),
    "open_ended_resume": range_seed(3 * MIB, "bytes=1048576-"),
    "suffix_last_500": range_seed(3 * MIB, "bytes=-500"),
    "suffix_longer_than_content": range_seed(100, "bytes=-1000"),
    "unit_case_Bytes_0-9": range_seed(100, "Bytes=0-9"),
    "unit_upper_BYTES_0-9": range_seed(100, "BYTES=0-9"),
    "unknown_unit_items_0-5": range_seed(100, "items=0-5"),
    "unknown_unit_on_empty_representation": range_seed(0, "items=0-5"),
    "suffix_zero_bytes_-0": range_seed(100, "bytes=-0"),
    "first_past_end_unsatisfiable": range_seed(100, "bytes=100-200,300-"),
    "unsatisfiable_dropped_single_left": range_seed(100, "bytes=500-600,0-4"),
    "empty_elements_bytes_0-4,,6-9": range_seed(1000, "bytes=0-4,,6-9"),
    "empty_elements_no_merge_gap": range_seed(1000, "bytes=0-4,,6-9", gap=0),
    "spaces_tabs_and_trailing_comma": range_seed(1000, "bytes= 0-1 , ,\t500-501 ,"),
    "surrounding_whitespace": range_seed(100, " \tbytes=0-5\t "),
    "overflow_last_bytes_0-18446744073709551616": range_seed(100, "bytes=0-18446744073709551616"),
    "overflow_first_past_u64": range_seed(100, "bytes=18446744073709551616-"),
    "overflow_suffix_past_u64": range_seed(100, "bytes=-99999999999999999999999999999"),
    "overflow_5000_nines": range_seed(100, "bytes=0-" + "9" * 5000),
    "length_u64_max_open": range_seed(U64_MAX, "bytes=0-"),
    "length_u64_max_tail_and_head": range_seed(U64_MAX, "bytes=18446744073709551614-18446744073709551615,0-0"),
    "length_u64_max_suffix": range_seed(U64_MAX, "bytes=-1,-18446744073709551615"),
    "open_ranges_200_x_0-": range_seed(3 * MIB, "bytes=" + ",".join(["0-"] * 200)),
    "apache_killer_invalid_5-0_to_5-1299": range_seed(
        3 * MIB, "bytes=0-" + "".join(f",5-{i}" for i in range(1300))),
    "apache_killer_1300_overlapping": range_seed(
        3 * MIB, "bytes=0-" + "".join(f",5-{5 + i}" for i in range(1300))),
    "descending_1000_adjacent_one_byte": range_seed(
        MIB, "bytes=" + ",".join(f"{i}-{i}" for i in reversed(range(1000)))),
    "descending_1000_far_apart_too_many_parts": range_seed(
        MIB, "bytes=" + ",".join(f"{i * 1000}-{i * 1000}" for i in reversed(range(1000)))),
    "descending_60_one_byte_multipart": range_seed(
        65536, "bytes=" + ",".join(f"{i * 1000}-{i * 1000}" for i in reversed(range(60))), max_parts=80),
    "ascending_64_parts_at_limit": range_seed(
        65536, "bytes=" + ",".join(f"{i * 1000}-{i * 1000 + 9}" for i in range(64))),
    "ascending_65_parts_over_limit": range_seed(
        65536, "bytes=" + ",".join(f"{i * 1000}-{i * 1000 + 9}" for i in range(65))),
    "ascending_80_parts_no_gap_no_content_type": range_seed(
        65536, "bytes=" + ",".join(f"{i * 800}-{i * 800}" for i in range(80)), max_parts=80, gap=0, ct=0),
    "last_before_first_invalid": range_seed(100, "bytes=5-0"),
    "empty_representation_open": range_seed(0, "bytes=0-"),
    "empty_representation_two_ranges": range_seed(0, "bytes=0-1,3-4"),
    "empty_representation_invalid": range_seed(0, "bytes=x"),
    "empty_representation_suffix_zero": range_seed(0, "bytes=-0"),
    "larger_than_whole_two_bytes_of_150": range_seed(150, "bytes=0-0,149-149"),
    "too_many_parts_max_2": range_seed(10000, "bytes=0-0,100-100,200-200", max_parts=2, gap=0),
    "two_parts_max_2": range_seed(10000, "bytes=0-0,100-100", max_parts=2, gap=0),
    "multi_keeps_request_order": range_seed(10000, "bytes=5000-5009,0-9,2000-2009"),
    "merged_part_takes_earliest_position": range_seed(10000, "bytes=5000-5009,0-9,5005-5020"),
    "merge_all_into_single": range_seed(10000, "bytes=5000-5009,0-9,2000-2009,5-8000"),
    "gap_exactly_merge_gap_merges": range_seed(10000, "bytes=0-9,90-100"),
    "gap_one_more_than_merge_gap_splits": range_seed(10000, "bytes=0-9,91-100"),
    "small_file_five_parts_larger_than_whole": range_seed(
        300, "bytes=" + ",".join(f"{i}-{i}" for i in range(0, 300, 60)), gap=0, ct=0),
    "small_file_two_parts_multipart": range_seed(300, "bytes=299-299,0-0", gap=0, ct=0),
    "invalid_bytes_empty": range_seed(100, "bytes="),
    "invalid_bytes_comma_only": range_seed(100, "bytes=,"),
    "invalid_empty_unit": range_seed(100, "=0-5"),
    "invalid_space_in_unit": range_seed(100, "by tes=0-5"),
    "invalid_no_equals": range_seed(100, "bytes 0-5"),
    "invalid_spaces_inside_spec": range_seed(100, "bytes=0 - 5"),
    "invalid_plus_sign": range_seed(100, "bytes=+0-5"),
    "invalid_hex": range_seed(100, "bytes=0x1-5"),
    "invalid_two_dashes": range_seed(100, "bytes=1-2-3"),
    "invalid_lone_dash": range_seed(100, "bytes=-"),
    "invalid_unicode_digit": range_seed(100, "bytes=0-\u0663"),
    "unicode_unit": range_seed(100, "b\u00fftes=0-5"),
    "invalid_utf8_header": range_seed(100, b"bytes=0-\xc3\x28"),
    "short_input_no_header": bytes([0, 0, 0]),
}


def cond_seed(if_match="", inm="", ims="", ius="", if_range="", etag='"abc"',
              method=0, has_range=0, lm="Sun, 06 Nov 1994 08:49:37 GMT",
              now="Wed, 18 May 2033 03:33:20 GMT"):
    def b(x):
        return x if isinstance(x, bytes) else x.encode()
    fields = [b(if_match), b(inm), b(ims), b(ius), b(if_range), b(etag),
              bytes([method]), bytes([has_range]), b(lm), b(now)]
    for f in fields:
        assert b"\xff" not in f
    return b"\xff".join(fields)


LM = "Sun, 06 Nov 1994 08:49:37 GMT"
BEFORE = "Sun, 06 Nov 1994 08:49:36 GMT"
AFTER = "Sun, 06 Nov 1994 08:49:38 GMT"
COND = {
    "no_conditionals": cond_seed(),
    "no_conditionals_with_range": cond_seed(has_range=1),
    "if_match_strong_hit": cond_seed(if_match='"abc"'),
    "if_match_list_hit": cond_seed(if_match='"x", "abc"'),
    "if_match_star": cond_seed(if_match="*"),
    "if_match_star_no_representation": cond_seed(if_match="*", etag=""),
    "if_match_miss_412": cond_seed(if_match='"x"'),
    "if_match_weak_W_x_412": cond_seed(if_match='W/"x"', etag='"x"'),
    "if_match_against_weak_current": cond_seed(if_match='"abc"', etag='W/"abc"'),
    "if_match_fails_before_if_none_match": cond_seed(if_match='"x"', inm='"abc"'),
    "if_none_match_hit_304": cond_seed(inm='"abc"'),
    "if_none_match_weak_hit_head": cond_seed(inm='W/"abc"', method=1),
    "if_none_match_star": cond_seed(inm="*"),
    "if_none_match_lone_comma": cond_seed(inm=","),
    "if_none_match_empty_elements": cond_seed(inm=',,"a" ,, "abc",'),
    "if_none_match_hit_other_method_412": cond_seed(inm='"abc"', method=2),
    "if_none_match_garbage_then_hit": cond_seed(inm='garbage, "a b", "abc"'),
    "if_none_match_tag_then_junk": cond_seed(inm='"abc"junk'),
    "if_none_match_miss_with_ims_ignored": cond_seed(inm='"other"', ims=LM),
    "ims_imf_fixdate_304": cond_seed(ims=LM),
    "ims_rfc850": cond_seed(ims="Sunday, 06-Nov-94 08:49:37 GMT"),
    "ims_asctime": cond_seed(ims="Sun Nov  6 08:49:37 1994"),
    "ims_before_proceeds": cond_seed(ims=BEFORE),
    "ims_after_head_304": cond_seed(ims=AFTER, method=1),
    "ims_invalid_ignored": cond_seed(ims="not a date"),
    "ims_other_method_ignored": cond_seed(ims=LM, method=2),
    "ims_surrounding_whitespace": cond_seed(ims="  " + LM + "\t"),
    "ius_before_412": cond_seed(ius=BEFORE),
    "ius_after": cond_seed(ius=AFTER),
    "ius_ignored_with_if_match": cond_seed(if_match='"abc"', ius=BEFORE),
    "ius_no_last_modified": cond_seed(ius=BEFORE, lm=""),
    "if_range_strong_hit": cond_seed(if_range='"abc"', has_range=1),
    "if_range_weak_tag_never_matches": cond_seed(if_range='W/"abc"', has_range=1),
    "if_range_unterminated_tag": cond_seed(if_range='"abc', has_range=1),
    "if_range_other_tag": cond_seed(if_range='"xyz"', has_range=1),
    "if_range_date_equal": cond_seed(if_range=LM, has_range=1),
    "if_range_date_after": cond_seed(if_range=AFTER, has_range=1),
    "if_range_date_within_current_second": cond_seed(if_range=LM, has_range=1, now=LM),
    "if_range_garbage": cond_seed(if_range="garbage", has_range=1),
    "if_range_without_range": cond_seed(if_range='"xyz"'),
    "if_range_head_not_get": cond_seed(if_range='"abc"', has_range=1, method=1),
    "if_range_with_ims_and_inm": cond_seed(inm='"zzz"', ims=LM, if_range='"abc"', has_range=1),
    "date_year_9999": cond_seed(ims="Fri, 31 Dec 9999 23:59:59 GMT"),
    "date_epoch": cond_seed(ius="Thu, 01 Jan 1970 00:00:00 GMT", lm="Thu, 01 Jan 1970 00:00:00 GMT"),
    "date_before_epoch": cond_seed(ims="Wed, 31 Dec 1969 23:59:59 GMT"),
    "date_leap_day": cond_seed(ims="Thu, 29 Feb 2024 00:00:00 GMT"),
    "date_feb_30_invalid": cond_seed(ims="Fri, 30 Feb 2024 00:00:00 GMT"),
    "date_wrong_weekday": cond_seed(ims="Mon, 06 Nov 1994 08:49:37 GMT"),
    "date_leap_second": cond_seed(ims="Sun, 06 Nov 1994 23:59:60 GMT"),
    "date_two_dates": cond_seed(ims=LM + ", " + LM),
    "etag_bare_opaque_current": cond_seed(inm='"abc"', etag="abc"),
    "etag_obs_text": cond_seed(if_match='"\u00e9t\u00e9"', etag='"\u00e9t\u00e9"'),
    "etag_empty_tag": cond_seed(if_match='""', etag='""'),
    "etag_comma_inside_tag": cond_seed(inm='"a,b"', etag='"a,b"'),
    "etag_lowercase_w_prefix": cond_seed(inm='w/"abc"'),
    "invalid_utf8_if_match": cond_seed(if_match=b'"ab\xc3\x28c"', etag=b'"ab\xc3\x28c"'),
    "invalid_utf8_everywhere": b'\xfe\xfd\xffW/"\xc3\x28"\xff\x80\xff\xed\xa0\x80\xff"\xf0\x9f"',
    "many_commas": cond_seed(inm="," * 500 + '"abc"'),
    "many_tags_miss": cond_seed(if_match=", ".join(f'"t{i}"' for i in range(300))),
    "all_headers_hit": cond_seed(if_match='"abc"', inm='"zzz"', ims=BEFORE, ius=AFTER,
                                 if_range='"abc"', has_range=1),
    "single_field_only": b'"abc"',
    "empty_input": b"",
}


def digest_seed(repr_field=None, legacy_field=None, enabled=3, unsolicited=False,
                raw=b"\x01\x02\x03"):
    """want_digest: flags (enabled set, unsolicited, which fields are absent), then
    Want-Repr-Digest, Want-Digest and digest bytes separated by 0xFF."""
    def b(x):
        return x.encode() if isinstance(x, str) else x
    flags = enabled | (8 if unsolicited else 0)
    flags |= 16 if repr_field is None else 0
    flags |= 32 if legacy_field is None else 0
    return bytes([flags]) + b(repr_field or "") + b"\xff" + b(legacy_field or "") + b"\xff" + raw


DIGEST = {
    "rfc9530_sha256_1": digest_seed("sha-256=1"),
    "rfc9530_example_weights": digest_seed("sha-512=3, sha-256=10, unixsum=0"),
    "aria2_default": digest_seed(legacy_field="SHA-512;q=1, SHA-256;q=1, SHA;q=0.1"),
    "aria2_default_sha512_first": digest_seed(legacy_field="SHA-512;q=1, SHA-256;q=1", enabled=4),
    "both_fields": digest_seed("sha-512=1", "SHA-256"),
    "tie_server_order": digest_seed("sha-256=5, sha-512=5", enabled=4),
    "zero_not_acceptable": digest_seed("sha-256=0, sha-512=0", "sha-256;q=0"),
    "later_member_wins": digest_seed("sha-256=9, sha-256=0, sha-512=1"),
    "out_of_range_values": digest_seed("sha-256=11, sha-512=-1, sha-256=1.5, sha-512=?1"),
    "leading_zeros": digest_seed("sha-256=0010, sha-512=000000000000009"),
    "sixteen_digits": digest_seed("sha-256=1234567890123456"),
    "bare_key_boolean": digest_seed("sha-256, sha-512;q=1"),
    "quoted_comma": digest_seed('x="a, sha-256=9", sha-512=1'),
    "escaped_quote": digest_seed('x="a\\", sha-256=9", sha-512=1'),
    "inner_list": digest_seed("x=(a b sha-256=9), sha-512=2"),
    "unterminated_string": digest_seed('x="abc, sha-256=10'),
    "unbalanced_parens": digest_seed("x=)), sha-256=3, y=((, sha-512=4"),
    "upper_case_keys": digest_seed("SHA-256=4, Sha-512=7", "sha-512;Q=0.5"),
    "malformed_q": digest_seed(legacy_field="SHA-256;q=2, SHA-512;q=0.5000, sha-256;q=x, SHA-512;q=.5"),
    "q_three_decimals": digest_seed(legacy_field="SHA-256;q=0.001, SHA-512;q=0.000"),
    "unsupported_only": digest_seed("md5=10, sha=5, id-sha-256=9", "MD5, SHA, UNIXsum"),
    "unsolicited_no_fields": digest_seed(enabled=3, unsolicited=True),
    "unsolicited_excluded": digest_seed("sha-256=0", enabled=1, unsolicited=True),
    "nothing_enabled": digest_seed("sha-256=10", "SHA-256", enabled=0, unsolicited=True),
    "empty_fields": digest_seed("", ""),
    "commas_only": digest_seed(",,,,", ",,;;==,"),
    "long_digest_bytes": digest_seed("sha-512=1", raw=bytes(range(256)) * 2),
    "invalid_utf8": b"\x03sha-256=\xc3\x28\xff\xfe\xfdSHA-256\xff",
    "empty_input": b"",
}


def write(dirname, seeds):
    d = os.path.join(HERE, "corpus", dirname)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        safe = "".join(c if c.isalnum() or c in "-_.,=" else "_" for c in name)
        with open(os.path.join(d, safe), "wb") as f:
            f.write(data)
    assert len(seeds) < 100


write("range", RANGE)
write("conditionals", COND)
write("want_digest", DIGEST)
print(f"range: {len(RANGE)} seeds, conditionals: {len(COND)} seeds, want_digest: {len(DIGEST)} seeds")
