#!/bin/sh
# SPDX-License-Identifier: MIT
# Make TLS material for the tests with certtool/psktool (gnutls-bin):
#   DIR/ca-cert.pem ca-key.pem server-cert.pem server-key.pem   (CA "A")
#   DIR/client-cert.pem client-key.pem                          (signed by A)
#   DIR/other/ca-cert.pem ... client-cert.pem client-key.pem    (another CA "B")
#   DIR/keys.psk                                                 (psktool: alice)
#   DIR/client/{ca-cert,client-cert,client-key}.pem              (qemu client layout)
#   DIR/badclient/: trusts CA A, but its client certificate is from CA B
# Usage: mkcerts.sh DIR.  Exits 77 when certtool or psktool is missing.
set -eu
dir=$1
command -v certtool >/dev/null && command -v psktool >/dev/null || {
	echo "skip: certtool/psktool (gnutls-bin) not installed"; exit 77; }
mkdir -p "$dir/other" "$dir/client" "$dir/other/client"

mkca() {	# dir name
	certtool --generate-privkey --key-type=ecdsa --outfile "$1/ca-key.pem" 2>/dev/null
	cat > "$1/ca.info" <<EOT
cn = $2
ca
cert_signing_key
expiration_days = 30
EOT
	certtool --generate-self-signed --load-privkey "$1/ca-key.pem" \
		--template "$1/ca.info" --outfile "$1/ca-cert.pem" 2>/dev/null
}

mkcert() {	# dir who(server|client) cn
	# RSA: qemu 10 refuses a client certificate whose key usage lacks key
	# encipherment, which certtool leaves out for ECDSA keys.
	certtool --generate-privkey --key-type=rsa --bits=2048 --outfile "$1/$2-key.pem" 2>/dev/null
	if [ "$2" = server ]; then
		cat > "$1/$2.info" <<EOT
organization = aioloop test
cn = $3
dns_name = localhost
ip_address = 127.0.0.1
tls_www_server
encryption_key
signing_key
expiration_days = 30
EOT
	else
		cat > "$1/$2.info" <<EOT
country = XX
organization = aioloop test
cn = $3
tls_www_client
encryption_key
signing_key
expiration_days = 30
EOT
	fi
	certtool --generate-certificate --load-ca-certificate "$1/ca-cert.pem" \
		--load-ca-privkey "$1/ca-key.pem" --load-privkey "$1/$2-key.pem" \
		--template "$1/$2.info" --outfile "$1/$2-cert.pem" 2>/dev/null
}

mkca "$dir" "aioloop test CA A"
mkcert "$dir" server localhost
mkcert "$dir" client "client A"
mkca "$dir/other" "aioloop test CA B"
mkcert "$dir/other" server localhost
mkcert "$dir/other" client "client B"
for d in "$dir" "$dir/other"; do
	cp "$d/ca-cert.pem" "$d/client-cert.pem" "$d/client-key.pem" "$d/client/"
done
mkdir -p "$dir/badclient"
cp "$dir/ca-cert.pem" "$dir/badclient/"
cp "$dir/other/client-cert.pem" "$dir/other/client-key.pem" "$dir/badclient/"
psktool -u alice -p "$dir/keys.psk" >/dev/null 2>&1
psktool -u mallory -p "$dir/other/keys.psk" >/dev/null 2>&1
chmod -R go-rwx "$dir"
