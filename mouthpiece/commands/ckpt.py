"""`mouthpiece ckpt …`: inspect, verify, sign and trust checkpoint bundles (thin adapter).

Every sub-parser sets `func(args) -> exit code`; refusals raise `InputError` (→ exit 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_DATA_DIR = Path("data")
EXIT_OK = 0


def register(subparsers) -> None:
    """Add `ckpt` and its sub-commands to the top-level sub-parsers."""
    ckpt = subparsers.add_parser("ckpt", help="checkpoint bundles: inspect, verify, keygen, sign, trust")
    sub = ckpt.add_subparsers(dest="ckpt_command", required=True)

    p = sub.add_parser("inspect", help="show a bundle's manifest, signers and integrity")
    p.add_argument("bundle", help="bundle folder or .zip")
    _trust_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=inspect_command)

    p = sub.add_parser("verify", help="check a bundle; exit 0 only if intact and signed by a trusted key")
    p.add_argument("bundle", help="bundle folder or .zip")
    _trust_options(p)
    p.add_argument("--allow-untrusted", action="store_true",
                   help="check integrity even without a trusted signature (still exits 2 if untrusted)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=verify_command)

    p = sub.add_parser("keygen", help="create an Ed25519 signing key (private.pem + public.pub)")
    p.add_argument("--out", required=True, help="folder for the new key (must not hold one already)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=keygen_command)

    p = sub.add_parser("sign", help="add a signature to a bundle folder")
    p.add_argument("bundle", help="bundle folder")
    p.add_argument("--key", required=True, help="private key (KEYDIR/private.pem)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=sign_command)

    p = sub.add_parser("zip", help="pack a verified bundle folder into a .zip")
    p.add_argument("bundle", help="bundle folder")
    p.add_argument("out", help="output .zip")
    p.set_defaults(func=zip_command)

    trust = sub.add_parser("trust", help="manage the trust store of public keys")
    trust_sub = trust.add_subparsers(dest="trust_command", required=True)
    p = trust_sub.add_parser("add", help="trust a public key")
    p.add_argument("pubkey", help="public key file (PEM, e.g. KEYDIR/public.pub)")
    _trust_options(p)
    p.set_defaults(func=trust_add_command)
    p = trust_sub.add_parser("list", help="list trusted key ids")
    _trust_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=trust_list_command)


def _trust_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trust-dir", help="folder of trusted *.pub keys (default: DATA_DIR/trust)")
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), help="data folder (default: ./data)")


def _trust_dir(args: argparse.Namespace) -> Path:
    from mouthpiece.checkpoints import trust_dir_for

    return Path(args.trust_dir) if args.trust_dir else trust_dir_for(args.data_dir)


def inspect_command(args: argparse.Namespace) -> int:
    from mouthpiece.checkpoints import CheckpointError, verify_bundle
    from mouthpiece.checkpoints.describe import describe_bundle

    info = describe_bundle(args.bundle)
    try:
        report = verify_bundle(args.bundle, _trust_dir(args), allow_untrusted=True)
        info["check"] = {"intact": True, "trusted": report.trusted, "signers": report.signers,
                         "warnings": report.warnings}
    except CheckpointError as exc:
        info["check"] = {"intact": False, "trusted": False, "code": exc.code, "error": str(exc)}
    if args.json:
        print(json.dumps(info))
        return EXIT_OK
    manifest = info["manifest"]
    print(f"{manifest.get('id')} {manifest.get('version')}  architecture {manifest.get('architecture')}")
    print(f"  release   {manifest.get('release_id')}   created {manifest.get('created')}")
    print(f"  sha256    {info['sha256']}")
    print(f"  code      mouthpiece {manifest.get('code_range')} (built with {manifest.get('created_with')})")
    parent = manifest.get("parent")
    print(f"  parent    {parent['id']} {parent['version']} ({parent['sha256'][:12]}…)" if parent else "  parent    none")
    print(f"  recipe    {json.dumps(manifest.get('recipe'))}")
    for name, entry in sorted((manifest.get("files") or {}).items()):
        print(f"  file      {name}  {entry.get('size')} bytes  sha256 {str(entry.get('sha256'))[:16]}…")
    check = info["check"]
    trusted_keys = {s["key_id"] for s in check.get("signers", []) if s["trusted"]}
    for key in info["signatures"]:
        print(f"  signed by {key}{' (trusted)' if key in trusted_keys else ''}")
    if check["intact"]:
        status = "intact, trusted" if check["trusted"] else "intact, NOT trusted"
    else:
        status = f"REFUSED ({check['code']}): {check['error']}"
    print(f"  check     {status}")
    return EXIT_OK


def verify_command(args: argparse.Namespace) -> int:
    from mouthpiece.checkpoints import CheckpointError, verify_bundle

    try:
        report = verify_bundle(args.bundle, _trust_dir(args), allow_untrusted=args.allow_untrusted)
    except CheckpointError as exc:
        if args.json:
            print(json.dumps({"ok": False, "intact": False, "trusted": False, "path": args.bundle,
                              "code": exc.code, "error": str(exc)}))
        raise
    if args.json:
        print(json.dumps({"ok": report.trusted, **report.to_json()}))
    if not report.trusted:
        raise CheckpointError("untrusted", f"checkpoint {report.id} {report.version} ({args.bundle}) is intact "
                                           f"but not signed by a trusted key in {_trust_dir(args)}")
    if not args.json:
        signers = ", ".join(s["key_id"][:16] + "…" for s in report.signers if s["trusted"]) or "pinned digest"
        print(f"ok: {report.id} {report.version} intact and trusted (sha256 {report.sha256}; by {signers})")
    return EXIT_OK


def keygen_command(args: argparse.Namespace) -> int:
    from mouthpiece.checkpoints import generate_keypair

    pair = generate_keypair(args.out)
    if args.json:
        print(json.dumps({"key_id": pair.key_id, "private_key": str(pair.private_path),
                          "public_key": str(pair.public_path)}))
    else:
        print(f"key id {pair.key_id}")
        print(f"private key {pair.private_path} (keep it secret)")
        print(f"public key  {pair.public_path} (give it to `mouthpiece ckpt trust add`)")
    return EXIT_OK


def sign_command(args: argparse.Namespace) -> int:
    from mouthpiece.checkpoints import sign_bundle

    kid = sign_bundle(args.bundle, args.key)
    if args.json:
        print(json.dumps({"bundle": args.bundle, "key_id": kid}))
    else:
        print(f"signed {args.bundle} with key {kid}")
    return EXIT_OK


def zip_command(args: argparse.Namespace) -> int:
    from mouthpiece.checkpoints import zip_bundle

    print(f"wrote {zip_bundle(args.bundle, args.out)}")
    return EXIT_OK


def trust_add_command(args: argparse.Namespace) -> int:
    from mouthpiece.checkpoints import TrustStore

    kid = TrustStore(_trust_dir(args)).add(args.pubkey)
    print(f"trusted key {kid} (in {_trust_dir(args)})")
    return EXIT_OK


def trust_list_command(args: argparse.Namespace) -> int:
    from mouthpiece.checkpoints import TrustStore

    store = TrustStore(_trust_dir(args))
    if args.json:
        print(json.dumps({"trust_dir": str(store.trust_dir), "key_ids": sorted(store.key_ids)}))
    else:
        for kid in sorted(store.key_ids):
            print(kid)
        if not store.key_ids:
            print(f"no trusted keys in {store.trust_dir}", file=sys.stderr)
    return EXIT_OK
