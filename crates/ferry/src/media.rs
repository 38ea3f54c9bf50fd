//! The media type of an artifact, inferred from its file name when `ferry release publish` is
//! not given `--media-type`. Devices decide by it how to install a file: the agent's `dir`
//! handler unpacks the tar types and copies anything else; external handlers receive it as
//! `FERRY_MEDIA_TYPE`. A name that fits none of these is refused rather than guessed, since a
//! wrong type makes a device copy an archive it should have unpacked, or fail to unpack it.

use std::path::Path;

/// File name endings and the media type each stands for, longest ending first where one is a
/// suffix of another (`.tar.gz` before `.gz` would matter if `.gz` were listed).
pub const KNOWN: &[(&str, &str)] = &[
    (".tar.gz", "application/gzip"),
    (".tgz", "application/gzip"),
    (".tar.zst", "application/zstd"),
    (".tzst", "application/zstd"),
    (".tar", "application/x-tar"),
    (".zip", "application/zip"),
    (".deb", "application/vnd.debian.binary-package"),
    (".rpm", "application/x-rpm"),
    (".msi", "application/x-msi"),
    (".json", "application/json"),
    (".bin", "application/octet-stream"),
    (".img", "application/octet-stream"),
];

/// The help text's list of the endings and their types.
pub const HELP: &str = "Media type of the artifacts. Without it, each artifact's type follows from its file name: \
.tar.gz and .tgz application/gzip, .tar.zst and .tzst application/zstd, .tar application/x-tar (these three \
the agent's dir handler unpacks), .zip application/zip, .deb application/vnd.debian.binary-package, .rpm \
application/x-rpm, .msi application/x-msi, .json application/json, .bin and .img application/octet-stream \
(copied as one file). Other names need --media-type.";

/// The media type for a file name, ignoring case; `None` when the ending is not in [`KNOWN`].
pub fn infer(file_name: &str) -> Option<&'static str> {
    let lower = file_name.to_ascii_lowercase();
    KNOWN.iter().find(|(ending, _)| lower.ends_with(ending) && lower.len() > ending.len()).map(|&(_, media)| media)
}

/// The message for a file whose type cannot be inferred: what to do, and what is accepted.
pub fn unknown(path: &Path) -> String {
    let endings: Vec<&str> = KNOWN.iter().map(|(ending, _)| *ending).collect();
    format!(
        "--artifact {}: cannot tell its media type from the file name; name it with one of {} or pass \
         --media-type (e.g. application/octet-stream to install it as a single file)",
        path.display(),
        endings.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_get_the_types_the_dir_handler_unpacks() {
        assert_eq!(infer("vpn-client-5.0.tar.gz"), Some("application/gzip"));
        assert_eq!(infer("VPN.TGZ"), Some("application/gzip"));
        assert_eq!(infer("a.tar.zst"), Some("application/zstd"));
        assert_eq!(infer("a.tzst"), Some("application/zstd"));
        assert_eq!(infer("a.tar"), Some("application/x-tar"));
        assert_eq!(infer("setup.msi"), Some("application/x-msi"));
        assert_eq!(infer("firmware.bin"), Some("application/octet-stream"));
    }

    #[test]
    fn unknown_names_are_not_guessed() {
        for name in ["notes.txt", "archive.gz", "tar", ".tar", "firmware", "a.tar.gz.sig"] {
            assert_eq!(infer(name), None, "{name}");
        }
    }

    #[test]
    fn the_help_names_every_ending_and_type() {
        for (ending, media) in KNOWN {
            assert!(HELP.contains(&format!("{ending} ")), "{ending} missing from the help");
            assert!(HELP.contains(media), "{media} missing from the help");
        }
    }
}
