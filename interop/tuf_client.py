#!/usr/bin/env python3
"""Interoperability client: python-tuf, the reference TUF implementation, against Ferry.

Ferry's metadata is meant to be plain TUF 1.0 in the Uptane shape (docs/trust.md), so
an independent client must verify what a Ferry server publishes. This script is that client;
crates/ferry-server/tests/interop.rs drives it against a real server. It needs only the
standard library and python-tuf (`pip install -r interop/requirements.txt`).

Subcommands (exit 0 on success, 1 on any verification or download failure, message on stderr):

  image     --metadata-url URL --target-url URL --token TOKEN --root FILE
            --metadata-dir DIR --target PATH --out-dir DIR
      The TUF client workflow with python-tuf's ngclient.Updater: root chain from the trusted
      root FILE, timestamp, snapshot, targets and delegations, then downloads target PATH into
      DIR, verified against its length and hashes. Every request carries
      `Authorization: Bearer TOKEN` (a device credential or an admin token). Prints one JSON
      line: {"path", "length", "sha256", "custom", "file"}.

  metadata  --root FILE FILES...
      Loads each metadata file (named as served: VERSION.ROLE.json, timestamp.json, root.json)
      with python-tuf and checks its signatures with the right delegator: the root chain
      N -> N+1 with both thresholds starting at the trusted root FILE; timestamp, snapshot and
      targets with the root (the newest version of each with the newest root); delegated
      targets roles with the targets metadata delegating to them. Also checks that timestamps
      and snapshots agree with the files they describe, when those files are given. Prints
      one line per file.

  director  --director-url URL --image-url URL --target-url URL --token TOKEN
            --director-root FILE --image-root FILE --metadata-dir DIR --device ID
            [--out-dir DIR] [--counter-floor PRODUCT=N ...]
      Uptane: the device's director metadata (root chain from the trusted director root FILE,
      timestamp, snapshot, targets) and the image repository, each with its own ngclient
      Updater and metadata directory under DIR. The director's targets must name the device
      (top-level `custom.device`, also when they list nothing, and each entry's); each
      director target must be in the image repository's signed metadata (delegations
      followed) with the same length, hashes and custom.ferry.{product, version, platforms,
      release_counter}, and its release counter must not be below the floor given for its
      product. Each one is then downloaded from the image repository and verified. Prints
      one JSON line: {"device", "director_version", "targets": [{"path", "length", "sha256",
      "release_counter", "file"}]}. The message of a refusal names the rule it breaks.

  The `metadata` subcommand checks director files too: give the director's trusted root as
  --root and its files as served (N.root.json, timestamp.json, N.snapshot.json,
  N.targets.json).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator

from tuf.api import exceptions
from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp
from tuf.ngclient import FetcherInterface, Updater

TOP_LEVEL = ("root", "timestamp", "snapshot", "targets")


class BearerFetcher(FetcherInterface):
    """A python-tuf fetcher (standard library HTTP) that sends `Authorization: Bearer TOKEN`.

    Ferry serves its TUF repositories only to callers it knows: enrolled devices and admins.
    """

    def __init__(self, token: str, timeout: float = 30.0, chunk_size: int = 256 * 1024):
        self._token = token
        self._timeout = timeout
        self._chunk_size = chunk_size

    def _fetch(self, url: str) -> Iterator[bytes]:
        request = urllib.request.Request(
            url,
            headers={"Authorization": f"Bearer {self._token}", "User-Agent": "ferry-interop python-tuf"},
        )
        try:
            response = urllib.request.urlopen(request, timeout=self._timeout)  # noqa: S310 (http(s) only)
        except urllib.error.HTTPError as e:
            detail = e.read(512).decode("utf-8", "replace").strip()
            e.close()
            # ngclient ends the root chain on 404/403, so the status code must be passed on.
            raise exceptions.DownloadHTTPError(f"GET {url}: HTTP {e.code} {detail}", e.code) from e
        except (socket.timeout, TimeoutError) as e:
            raise exceptions.SlowRetrievalError(f"GET {url}: timed out") from e
        except urllib.error.URLError as e:
            raise exceptions.DownloadError(f"GET {url}: {e.reason}") from e
        return self._chunks(response)

    def _chunks(self, response) -> Iterator[bytes]:
        with response:
            while True:
                try:
                    chunk = response.read(self._chunk_size)
                except (socket.timeout, TimeoutError) as e:
                    raise exceptions.SlowRetrievalError("timed out while reading a response") from e
                if not chunk:
                    return
                yield chunk


def read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def cmd_image(args: argparse.Namespace) -> int:
    """Refresh, find and download one target of the image repository (see module doc)."""
    os.makedirs(args.metadata_dir, exist_ok=True)
    os.makedirs(args.out_dir, exist_ok=True)
    updater = Updater(
        metadata_dir=args.metadata_dir,
        metadata_base_url=args.metadata_url,
        target_dir=args.out_dir,
        target_base_url=args.target_url,
        fetcher=BearerFetcher(args.token),
        bootstrap=read_file(args.root),
    )
    updater.refresh()
    info = updater.get_targetinfo(args.target)
    if info is None:
        raise LookupError(f"target {args.target!r} is not listed in the image repository's signed metadata")
    path = updater.download_target(info)
    print(
        json.dumps(
            {
                "path": info.path,
                "length": info.length,
                "sha256": info.hashes.get("sha256"),
                "custom": info.custom,
                "file": path,
            },
            sort_keys=True,
        )
    )
    return 0


# --- metadata -----------------------------------------------------------------------------

_NAME = re.compile(r"^(?:(?P<version>[0-9]+)\.)?(?P<role>.+)\.json$")


class Loaded:
    """One metadata file: its path, role name (from the file name), parsed metadata, bytes."""

    def __init__(self, path: str):
        self.path = path
        self.name = os.path.basename(path)
        m = _NAME.match(self.name)
        if m is None:
            raise ValueError(f"{self.name}: not a metadata file name (VERSION.ROLE.json or ROLE.json)")
        self.role = m.group("role")
        self.data = read_file(path)
        self.md = Metadata.from_bytes(self.data)
        named_version = m.group("version")
        if named_version is not None and int(named_version) != self.md.signed.version:
            raise ValueError(f"{self.name}: the file says version {self.md.signed.version}")
        expected_type = self.role if self.role in TOP_LEVEL else Targets.type
        if self.md.signed.type != expected_type:
            raise ValueError(f"{self.name}: type is {self.md.signed.type!r}, expected {expected_type!r}")

    @property
    def version(self) -> int:
        return self.md.signed.version


def verify_root_chain(trusted: Metadata, roots: list[Loaded], report) -> dict[int, Metadata]:
    """The chain of roots from `trusted`: version N+1 must be signed by the thresholds of both
    N and N+1. Returns the verified roots by version."""
    trusted.signed.verify_delegate(Root.type, trusted.signed_bytes, trusted.signatures)
    chain = {trusted.signed.version: trusted}
    by_version: dict[int, Loaded] = {}
    for f in roots:
        other = by_version.setdefault(f.version, f)
        if other.data != f.data:
            raise ValueError(f"{f.name} and {other.name} are different roots with version {f.version}")
    same = by_version.get(trusted.signed.version)
    if same is not None and same.md.signed_bytes != trusted.signed_bytes:
        raise ValueError(f"{same.name} differs from the trusted root of the same version")
    newest = max(by_version, default=trusted.signed.version)
    for version in range(trusted.signed.version + 1, newest + 1):
        if version not in by_version:
            raise ValueError(f"root version {version} is missing: the chain has a gap")
        new = by_version[version].md
        previous = chain[version - 1].signed
        result = new.signed.get_root_verification_result(previous, new.signed_bytes, new.signatures)
        if not result.verified:
            raise exceptions.UnsignedMetadataError(
                f"root version {version}: previous root threshold met: {result.first.verified} "
                f"(signed by {sorted(result.first.signed)}), own threshold met: {result.second.verified} "
                f"(signed by {sorted(result.second.signed)})"
            )
        chain[version] = new
    for f in roots:
        if f.version < trusted.signed.version:
            report(False, f, f"root version {f.version} is older than the trusted root")
        else:
            report(True, f, f"root v{f.version} in the chain from v{trusted.signed.version}")
    return chain


def verify_by_any(role: str, f: Loaded, delegators: list[tuple[str, Metadata]]) -> str:
    """Verifies `f` as `role` with the first delegator that verifies it; returns its name."""
    errors = []
    for name, delegator in delegators:
        try:
            delegator.signed.verify_delegate(role, f.md.signed_bytes, f.md.signatures)
            return name
        except (exceptions.UnsignedMetadataError, ValueError) as e:
            errors.append(f"{name}: {e}")
    raise exceptions.UnsignedMetadataError("; ".join(errors) or f"nothing delegates to {role}")


def cmd_metadata(args: argparse.Namespace) -> int:
    """Signature checks of metadata files with python-tuf (see module doc)."""
    failures = verified = 0

    def report(ok: bool, f: Loaded, message: str) -> None:
        nonlocal failures, verified
        if ok:
            verified += 1
            print(f"verified {f.name}: {message}")
        else:
            failures += 1
            print(f"FAILED {f.name}: {message}", file=sys.stderr)

    trusted = Metadata.from_bytes(read_file(args.root))
    if trusted.signed.type != Root.type:
        raise ValueError(f"{args.root} is not root metadata")
    files: list[Loaded] = []
    for path in args.files:
        try:
            files.append(Loaded(path))
        except Exception as e:  # noqa: BLE001 (report every file)
            failures += 1
            print(f"FAILED {os.path.basename(path)}: does not load: {type(e).__name__}: {e}", file=sys.stderr)

    chain = verify_root_chain(trusted, [f for f in files if f.role == Root.type], report)
    newest_root = max(chain)
    # Newest root first: the latest version of each role must verify with it; older versions
    # may have been signed under an older root.
    roots = [(f"root v{v}", chain[v]) for v in sorted(chain, reverse=True)]
    latest = {}
    for f in files:
        latest[f.role] = max(latest.get(f.role, 0), f.version)

    verified_targets: dict[str, dict[int, Metadata]] = {}
    for f in files:
        if f.role not in TOP_LEVEL[1:]:
            continue
        allowed = roots[:1] if f.version == latest[f.role] else roots
        try:
            by = verify_by_any(f.role, f, allowed)
            report(True, f, f"{f.role} v{f.version} by {by}")
            if f.role == Targets.type:
                verified_targets.setdefault(f.role, {})[f.version] = f.md
        except Exception as e:  # noqa: BLE001
            report(False, f, f"{f.role} v{f.version} (newest root v{newest_root}): {type(e).__name__}: {e}")

    # Delegated roles, possibly nested: repeat while a pass verifies something.
    pending = [f for f in files if f.role not in TOP_LEVEL]
    while pending:
        progress, still = False, []
        for f in pending:
            delegators = []
            for name, versions in verified_targets.items():
                ordered = sorted(versions, reverse=True)
                if f.version == latest[f.role]:
                    ordered = ordered[:1]  # the latest version needs the delegator's latest
                for v in ordered:
                    d = versions[v].signed.delegations
                    if d is not None and d.roles is not None and f.role in d.roles:
                        delegators.append((f"{name} v{v}", versions[v]))
            if not delegators:
                still.append(f)
                continue
            try:
                by = verify_by_any(f.role, f, delegators)
                report(True, f, f"delegated {f.role} v{f.version} by {by}")
                verified_targets.setdefault(f.role, {})[f.version] = f.md
                progress = True
            except Exception as e:  # noqa: BLE001
                report(False, f, f"delegated {f.role} v{f.version}: {type(e).__name__}: {e}")
        if not progress:
            for f in still:
                report(False, f, f"no verified targets metadata delegates to {f.role!r}")
            break
        pending = still

    # Cross-checks: a timestamp's snapshot entry and a snapshot's entries describe the files.
    by_role_version = {(f.role, f.version): f for f in files}
    for f in files:
        signed = f.md.signed
        if isinstance(signed, (Timestamp, Snapshot)):
            entries = {"snapshot.json": signed.snapshot_meta} if isinstance(signed, Timestamp) else signed.meta
            for file_name, meta in entries.items():
                target = by_role_version.get((file_name.removesuffix(".json"), meta.version))
                if target is None:
                    continue
                try:
                    meta.verify_length_and_hashes(target.data)
                except exceptions.LengthOrHashMismatchError as e:
                    report(False, f, f"its entry for {file_name} v{meta.version} does not match {target.name}: {e}")
    latest_snapshot = by_role_version.get((Snapshot.type, latest.get(Snapshot.type)))
    if latest_snapshot is not None:
        for role, version in latest.items():
            if role in (Root.type, Timestamp.type, Snapshot.type):
                continue
            listed = latest_snapshot.md.signed.meta.get(f"{role}.json")
            if listed is None or listed.version != version:
                found = "nothing" if listed is None else f"v{listed.version}"
                report(False, latest_snapshot, f"lists {found} for {role}.json; the newest file given is v{version}")

    print(f"{verified} of {len(args.files)} files verified, {failures} failure(s)")
    return 1 if failures else 0


# --- director -------------------------------------------------------------------------------


class DirectorRuleError(Exception):
    """The director's instructions break a rule of docs/trust.md
    ("The cross-check between the repositories"): the message
    names the rule."""


# The custom.ferry fields a director entry must share with the image repository's entry.
FERRY_FIELDS = ("product", "version", "platforms", "release_counter")


def parse_counter_floors(specs: list[str]) -> dict[str, int]:
    floors: dict[str, int] = {}
    for spec in specs:
        product, sep, value = spec.partition("=")
        if not sep or not product or not value.isdigit():
            raise ValueError(f"--counter-floor {spec!r}: expected PRODUCT=N (N a non-negative integer)")
        floors[product] = int(value)
    return floors


def check_director_target(device: str, path: str, director, image, floors: dict[str, int]) -> dict:
    """Cross-checks one director target with the image repository's entry for the same path
    (`image` is None when the image repository does not list it); returns its ferry fields."""
    custom = director.custom if isinstance(director.custom, dict) else {}
    named = custom.get("device")
    if named != device:
        raise DirectorRuleError(
            f"director metadata names another device: target {path!r} names {named!r}, not {device!r} "
            "(rule: director metadata names the device)"
        )
    if image is None:
        raise DirectorRuleError(
            f"director target {path!r} is not listed in the image repository's signed metadata "
            "(rule: only images the image repository signed may be installed)"
        )
    if director.length != image.length:
        raise DirectorRuleError(
            f"director target {path!r}: length {director.length} differs from the image repository's "
            f"{image.length} (rule: director and image repository agree on length)"
        )
    if director.hashes != image.hashes or "sha256" not in director.hashes:
        raise DirectorRuleError(
            f"director target {path!r}: hashes {director.hashes} differ from the image repository's "
            f"{image.hashes} or lack sha256 (rule: director and image repository agree on hashes)"
        )
    ferry = custom.get("ferry")
    image_custom = image.custom if isinstance(image.custom, dict) else {}
    image_ferry = image_custom.get("ferry")
    if not isinstance(ferry, dict) or not isinstance(image_ferry, dict):
        raise DirectorRuleError(
            f"director target {path!r}: custom.ferry missing in the director's or the image repository's "
            "entry (rule: director and image repository agree on custom.ferry)"
        )
    for field in FERRY_FIELDS:
        if field not in ferry or ferry.get(field) != image_ferry.get(field):
            raise DirectorRuleError(
                f"director target {path!r}: custom.ferry.{field} is {ferry.get(field)!r} in the director, "
                f"{image_ferry.get(field)!r} in the image repository "
                f"(rule: director and image repository agree on custom.ferry.{field})"
            )
    counter = ferry["release_counter"]
    if not isinstance(counter, int) or isinstance(counter, bool) or counter < 0:
        raise DirectorRuleError(
            f"director target {path!r}: custom.ferry.release_counter {counter!r} is not a non-negative integer"
        )
    floor = floors.get(ferry["product"])
    if floor is not None and counter < floor:
        raise DirectorRuleError(
            f"release counter goes down: director target {path!r} has release counter {counter}, below "
            f"the floor {floor} for product {ferry['product']!r} (rule: a release counter never goes down)"
        )
    return ferry


def cmd_director(args: argparse.Namespace) -> int:
    """Verifies a device's director metadata against the image repository (Uptane,
    docs/trust.md#the-cross-check-between-the-repositories), then downloads every image the director lists.

      1. Two ngclient Updaters, both with BearerFetcher(args.token): the director (metadata
         at args.director_url, trusted root args.director_root, trusted metadata in
         args.metadata_dir/director) and the image repository (args.image_url, args.image_root,
         args.metadata_dir/image, targets from args.target_url); refresh() both.
      2. The director's trusted targets metadata must name args.device at the top level
         (`"custom": {"device": ID}` in `signed`), also when it lists no target.
      3. Each director target: its custom.device is args.device; the image repository lists
         the same path (get_targetinfo, which follows delegations) with the same length and
         hashes and the same custom.ferry.{product,version,platforms,release_counter}; the
         release counter is not below --counter-floor for its product. Then the image is
         downloaded with the image Updater (verified against the image entry's length and
         hashes) into --out-dir (default args.metadata_dir/targets).

    Prints one JSON line {"device", "director_version", "targets": [{"path", "length",
    "sha256", "release_counter", "file"}]}.
    """
    floors = parse_counter_floors(args.counter_floor or [])
    director_dir = os.path.join(args.metadata_dir, "director")
    image_dir = os.path.join(args.metadata_dir, "image")
    out_dir = args.out_dir or os.path.join(args.metadata_dir, "targets")
    for d in (director_dir, image_dir, out_dir):
        os.makedirs(d, exist_ok=True)
    director = Updater(
        metadata_dir=director_dir,
        metadata_base_url=args.director_url,
        fetcher=BearerFetcher(args.token),
        bootstrap=read_file(args.director_root),
    )
    image = Updater(
        metadata_dir=image_dir,
        metadata_base_url=args.image_url,
        target_dir=out_dir,
        target_base_url=args.target_url,
        fetcher=BearerFetcher(args.token),
        bootstrap=read_file(args.image_root),
    )
    director.refresh()
    image.refresh()

    # The director's verified top-level targets, as ngclient trusts them after refresh().
    # ngclient has no public accessor for a whole targets role; python-tuf is pinned
    # (interop/requirements.txt), and its trusted set holds the verified `Targets`.
    targets: Targets = director._trusted_set.targets  # noqa: SLF001
    custom = targets.unrecognized_fields.get("custom")
    named = custom.get("device") if isinstance(custom, dict) else None
    if named != args.device:
        raise DirectorRuleError(
            f"director metadata names another device: targets version {targets.version} names {named!r}, "
            f"not {args.device!r} (rule: director metadata names the device)"
        )

    listed = []
    for path in sorted(targets.targets):
        entry = targets.targets[path]
        info = image.get_targetinfo(path)
        ferry = check_director_target(args.device, path, entry, info, floors)
        listed.append((path, entry, info, ferry))
    # Every entry is checked before anything is downloaded.
    result = []
    for path, entry, info, ferry in listed:
        file = image.download_target(info)
        result.append(
            {
                "path": path,
                "length": entry.length,
                "sha256": entry.hashes["sha256"],
                "release_counter": ferry["release_counter"],
                "file": file,
            }
        )
    print(
        json.dumps(
            {"device": args.device, "director_version": targets.version, "targets": result},
            sort_keys=True,
        )
    )
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    image = sub.add_parser("image", help="refresh the image repository and download one target")
    image.add_argument("--metadata-url", required=True, help="base URL of the metadata, e.g. http://h/tuf/image/")
    image.add_argument("--target-url", required=True, help="base URL of targets, e.g. http://h/tuf/image/targets/")
    image.add_argument("--token", required=True, help="device credential or admin token (Bearer)")
    image.add_argument("--root", required=True, help="trusted root metadata file (the bootstrap root)")
    image.add_argument("--metadata-dir", required=True, help="directory for trusted metadata")
    image.add_argument("--target", required=True, help="target path, e.g. gw/2.0/firmware.bin")
    image.add_argument("--out-dir", required=True, help="directory to download the target into")
    image.set_defaults(run=cmd_image)

    metadata = sub.add_parser("metadata", help="check the signatures of metadata files")
    metadata.add_argument("--root", required=True, help="trusted root metadata file")
    metadata.add_argument("files", nargs="+", help="metadata files, named VERSION.ROLE.json or ROLE.json")
    metadata.set_defaults(run=cmd_metadata)

    director = sub.add_parser("director", help="verify a device's director metadata against the image repository")
    director.add_argument("--director-url", required=True, help="base URL of the device's director metadata")
    director.add_argument("--image-url", required=True, help="base URL of the image repository's metadata")
    director.add_argument("--target-url", required=True, help="base URL of the image repository's targets")
    director.add_argument("--token", required=True, help="the device's credential (Bearer)")
    director.add_argument("--director-root", required=True, help="trusted director root metadata file")
    director.add_argument("--image-root", required=True, help="trusted image root metadata file")
    director.add_argument("--metadata-dir", required=True, help="directory for trusted metadata of both")
    director.add_argument("--device", required=True, help="the device id the director metadata must name")
    director.add_argument("--out-dir", help="directory to download the images into (default: METADATA_DIR/targets)")
    director.add_argument(
        "--counter-floor",
        action="append",
        metavar="PRODUCT=N",
        help="refuse a target of PRODUCT whose release counter is below N (repeatable)",
    )
    director.set_defaults(run=cmd_director)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except Exception as e:  # noqa: BLE001 (the contract: any failure is exit 1 with a message)
        print(f"error: {args.command}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
