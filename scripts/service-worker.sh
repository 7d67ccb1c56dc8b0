#!/usr/bin/env bash
# trunk post-build hook: turns public/sw.js into dist/sw.js with the list of files to precache
# and a version that is a hash of their contents (so every deployment that changes a file
# installs a new cache and drops the old one).
set -euo pipefail
dir="${TRUNK_STAGING_DIR:?run by trunk}"
template="$dir/public/sw.js"
files=$(cd "$dir" && find . -type f ! -path ./public/sw.js | sed 's|^\./||' | LC_ALL=C sort)
version=$(cd "$dir" && printf '%s\n' "$files" | xargs cat | sha256sum | cut -c1-16)
list=$(printf '%s\n' "./" $files | sed 's/.*/"&"/' | paste -sd, -)
sed -e "s|__VERSION__|$version|" -e "s|__FILES__|[$list]|" "$template" > "$dir/sw.js"
rm "$template"
