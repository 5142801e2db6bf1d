#!/usr/bin/env bash
# Build Ludii.jar from Ludii's public source at a pinned commit, with git, a JDK (17+) and Apache Ant.
#
#   scripts/build-ludii-jar.sh [OUT_JAR]      # default: ~/.cache/rlpr/ludii/Ludii.jar
#
# The pinned commit is the integrity check: git verifies every object it fetches against it, and the
# build refuses a checkout whose HEAD is not that commit. LUDII_REPO (default Ludii's GitHub repository;
# any clone or mirror of it works, a local path too) and LUDII_COMMIT (default: Ludii 1.3.12, the
# version rlpr is tested with) can be overridden. Ludii is CC BY-NC-ND 4.0: the jar is for your own
# use, never to be committed or redistributed with rlpr.
set -euo pipefail
repo=${LUDII_REPO:-https://github.com/Ludeme/Ludii.git}
commit=${LUDII_COMMIT:-93ed32184d8cb94e9c9fe2a06a606ca967317e6d}
jar=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/rlpr/ludii/Ludii.jar}

for tool in git javac ant; do
  command -v "$tool" >/dev/null || {
    echo "build-ludii-jar: '$tool' is required (Debian/Ubuntu: apt-get install git openjdk-17-jdk-headless ant)" >&2
    exit 1
  }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
src=$work/Ludii
git init -q "$src"
git -C "$src" remote add origin "$repo"
# Only the commit's tree, and only the files the jar needs: a partial fetch (blobs on demand) with a
# sparse checkout that leaves out the large reconstruction inputs. The upload-pack settings let a
# local clone serve such a fetch as GitHub does (over HTTPS they are not used).
git -C "$src" config remote.origin.uploadpack \
  "git -c uploadpack.allowFilter=true -c uploadpack.allowAnySHA1InWant=true upload-pack"
git -C "$src" config core.sparseCheckout true
printf '/*\n!/Mining/res/recons/input/\n' > "$src/.git/info/sparse-checkout"
echo "fetching Ludii $commit from $repo ..." >&2
git -C "$src" fetch -q --depth 1 --filter=blob:none origin "$commit"
git -C "$src" checkout -q FETCH_HEAD
if [ "$(git -C "$src" rev-parse HEAD)" != "$commit" ]; then
  echo "build-ludii-jar: $repo gave $(git -C "$src" rev-parse HEAD), not the pinned $commit; refusing" >&2
  exit 1
fi
# The public jar's build reads this file's folder; an empty file stands in for the skipped inputs.
mkdir -p "$src/Mining/res/recons/input" && : > "$src/Mining/res/recons/input/RulesetFormatted.csv"

echo "building Ludii.jar with ant (a minute or two) ..." >&2
(cd "$src/PlayerDesktop" && ant -q export_jar_public >&2)
mkdir -p "$(dirname "$jar")"
cp "$src/PlayerDesktop/build/Ludii.jar" "$jar.partial" && mv "$jar.partial" "$jar"
echo "$jar"
