#!/bin/sh
# Vendors isbot's pattern list (and its licence and test fixtures) at one version.
# Usage: src/visits/isbot/update.sh VERSION     (from the repository's root; needs npm, node, curl)
set -eu
version=${1:?usage: $0 VERSION, such as 5.2.4}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "isbot@$version" >/dev/null && tar xzf "isbot-$version.tgz")
node -e '
  const p = require(process.argv[1]);
  if (!Array.isArray(p.list) || p.list.length === 0) throw new Error("no list export");
  require("fs").writeFileSync(process.argv[2], JSON.stringify(p.list, null, 2) + "\n");
' "$work/package" "$here/patterns.json"
cp "$work/package/LICENSE" "$here/LICENSE"

for f in browsers crawlers; do
  curl -fsSL "https://raw.githubusercontent.com/omrilotan/isbot/v$version/fixtures/$f.yml" \
    -o "$root/tests/fixtures/isbot/$f.yml"
done

sed -i "s/^pub const ISBOT_VERSION: &str = \".*\";/pub const ISBOT_VERSION: \&str = \"$version\";/" \
  "$root/src/visits/bots.rs"
sed -i "s/isbot) [0-9][0-9.]* (the pattern list/isbot) $version (the pattern list/" "$here/README.md"
echo "isbot $version vendored: $(node -e 'console.log(require(process.argv[1]).length)' "$here/patterns.json") patterns"
echo "now run: cargo test --lib visits && cargo test --test visits"
