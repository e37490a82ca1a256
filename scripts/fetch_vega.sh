#!/usr/bin/env bash
# Re-create the JavaScript that the book ships so that its pages work offline:
#   book/_static/vega/     vega, vega-lite, vega-embed (UMD builds)  -> altair charts
#   book/_static/mathjax/  MathJax 3 (tex-chtml-full + CHTML fonts) -> formulas
# The files are committed; run this only to change a version. It needs `npm` and
# the npm registry. Versions must satisfy what the installed altair asks for
# (altair.vegalite.v6.display: VEGA_VERSION, VEGALITE_VERSION, VEGAEMBED_VERSION);
# book/_ext/offline_vega.py checks that at build time and fails the build otherwise.
set -euo pipefail

VEGA=6.4.0
VEGA_LITE=6.4.1        # = altair.SCHEMA_VERSION (v6.4.1) for altair 6.3
VEGA_EMBED=7.3.0
MATHJAX=3.2.2

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
vega_dir="$here/book/_static/vega"
mj_dir="$here/book/_static/mathjax"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

cd "$tmp"
for spec in "vega@$VEGA" "vega-lite@$VEGA_LITE" "vega-embed@$VEGA_EMBED" "mathjax@$MATHJAX"; do
  npm pack --silent "$spec" >/dev/null
done
for f in *.tgz; do
  mkdir -p "${f%.tgz}" && tar xzf "$f" -C "${f%.tgz}"
done

mkdir -p "$vega_dir"
cp "vega-$VEGA/package/build/vega.min.js" "$vega_dir/vega.min.js"
cp "vega-lite-$VEGA_LITE/package/build/vega-lite.min.js" "$vega_dir/vega-lite.min.js"
cp "vega-embed-$VEGA_EMBED/package/build/vega-embed.min.js" "$vega_dir/vega-embed.min.js"
cp "vega-$VEGA/package/LICENSE" "$vega_dir/LICENSE.vega"
cp "vega-lite-$VEGA_LITE/package/LICENSE" "$vega_dir/LICENSE.vega-lite"
cp "vega-embed-$VEGA_EMBED/package/LICENSE" "$vega_dir/LICENSE.vega-embed"

rm -rf "$mj_dir"
mkdir -p "$mj_dir/output/chtml/fonts"
cp "mathjax-$MATHJAX/package/es5/tex-chtml-full.js" "$mj_dir/tex-chtml-full.js"
cp -r "mathjax-$MATHJAX/package/es5/output/chtml/fonts/woff-v2" "$mj_dir/output/chtml/fonts/"
cp "mathjax-$MATHJAX/package/LICENSE" "$mj_dir/LICENSE"

cat > "$vega_dir/VERSIONS" <<VERSIONS
vega $VEGA
vega-lite $VEGA_LITE
vega-embed $VEGA_EMBED
mathjax $MATHJAX
VERSIONS
(cd "$here/book/_static" && sha256sum vega/*.min.js mathjax/tex-chtml-full.js) >> "$vega_dir/VERSIONS"
echo "updated $vega_dir and $mj_dir; now edit the versions in $vega_dir/README.md"
