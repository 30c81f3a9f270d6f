#!/usr/bin/env bash
# Debian packages the tests need: nginx (HTTP/HTTPS test server), openssl (test CA), and the
# compressors used to build archive fixtures. Idempotent; needs root (CI and dev machines are root).
set -euo pipefail
packages=(nginx openssl procps tar gzip bzip2 xz-utils zstd zip swift swift-proxy swift-object swift-container swift-account memcached docker-registry skopeo umoci apache2-utils)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
