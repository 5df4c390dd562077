"""`python -m fusefs --store S MOUNTPOINT`: the mount daemon (started by `cas mount`)."""

import argparse
import faulthandler

from .mount import run_foreground

parser = argparse.ArgumentParser(prog="python -m fusefs")
parser.add_argument("--store", required=True)
parser.add_argument("--read-only", action="store_true")
parser.add_argument("--project")
parser.add_argument("mountpoint")
args = parser.parse_args()
faulthandler.enable()  # a crash in native code leaves every thread's stack in mount.log (our stderr)
run_foreground(args.store, args.mountpoint, read_only=args.read_only, project=args.project)
