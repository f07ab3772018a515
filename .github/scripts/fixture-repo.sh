#!/usr/bin/env bash
# Builds a small challenge-like git repository from this repository's fixture records, for the
# action's self-test: a base commit without records, a head commit adding both fixture records
# (one valid, one invalid) under records/track_10min_16mb/. Prints base=SHA and head=SHA lines.
set -euo pipefail
src="$(cd "$(dirname "$0")/../.." && pwd)/fixtures/records"
dest="$1"
rm -rf "$dest"
mkdir -p "$dest"
cd "$dest"
git init -q -b main
git config user.name golfcheck-self-test
git config user.email self-test@example.invalid
echo "Parameter Golf (fixture)" > README.md
git add README.md
git commit -q -m base
base="$(git rev-parse HEAD)"
mkdir -p records/track_10min_16mb
cp -R "$src"/. records/track_10min_16mb/
git add records
git commit -q -m "add the fixture records"
echo "base=$base"
echo "head=$(git rev-parse HEAD)"
