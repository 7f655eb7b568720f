# e2e/lib/targets.sh - local scan targets with known weaknesses (see
# targets.py): an SSH banner, TLS with an expired self-signed certificate,
# HTTP without security headers. Source after e2e/lib/operator.sh.
#
#   targets_start DIR [SSH TLS HTTP CLOSED]
#                       sets TGT_SSH, TGT_TLS, TGT_HTTP, TGT_CLOSED (ports,
#                       the given ones when still free), TGT_PID; the
#                       certificate and key go to DIR
#   targets_stop

# expired_cert DIR: a self-signed certificate valid in January 2020 only
expired_cert() {
	local d=$1
	mkdir -p "$d/db"
	: >"$d/db/index"
	echo 01 >"$d/db/serial"
	cat >"$d/ca.cnf" <<'CNF'
[ ca ]
default_ca = expired
[ expired ]
dir = .
database = db/index
serial = db/serial
new_certs_dir = db
default_md = sha256
policy = any
copy_extensions = none
[ any ]
commonName = supplied
CNF
	(cd "$d" &&
		openssl req -new -newkey rsa:2048 -nodes -keyout key.pem -out req.pem \
			-subj "/CN=expired.vigil.test" >/dev/null 2>&1 &&
		openssl ca -batch -config ca.cnf -selfsign -keyfile key.pem -in req.pem \
			-out cert.pem -startdate 20200101000000Z -enddate 20200201000000Z \
			>/dev/null 2>&1) || fail "could not make the expired certificate"
}

targets_start() {
	local d=$1 ports want=()
	shift
	# the ports asked for, when every one of them is still free
	if [ $# -eq 4 ] && python3 -c '
import socket, sys
for p in sys.argv[1:]:
    for a in ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((a, int(p)))
        s.close()' "$@" 2>/dev/null; then
		want=("$@")
	fi
	[ -f "$d/cert.pem" ] || expired_cert "$d"
	coproc TGT { exec python3 "$E2E_TOP/e2e/lib/targets.py" "$d/cert.pem" "$d/key.pem" "${want[@]}" 2>>"$d/targets.log"; }
	TGT_PID=$TGT_PID
	read -r -t 20 ports <&"${TGT[0]}" || fail "targets did not start"
	TGT_SSH=$(jq -r .ssh <<<"$ports")
	TGT_TLS=$(jq -r .tls <<<"$ports")
	TGT_HTTP=$(jq -r .http <<<"$ports")
	TGT_CLOSED=$(jq -r .closed <<<"$ports")
}

targets_stop() {
	[ -n "${TGT_PID:-}" ] || return 0
	kill -TERM "$TGT_PID" 2>/dev/null
	wait "$TGT_PID" 2>/dev/null
	TGT_PID=
	return 0
}
