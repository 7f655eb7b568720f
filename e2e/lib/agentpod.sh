# e2e/lib/agentpod.sh - run vigil-agent here exactly as an agent pod of the
# local cluster would run it: the pod's command, arguments and environment,
# with Secret and downward-API values resolved as a kubelet resolves them.
# Two things are mapped to this machine: the image's binary path becomes
# $VIGIL_BUILD/bin/vigil-agent, and the spool volume's mount path becomes a
# local directory (what a kubelet's volume mount provides).
# Source after e2e/lib/operator.sh (VIGIL_BUILD, fail).

# pod_command NS POD SPOOL: the pod's command and arguments, NUL-separated
pod_command() {
	kubectl -n "$1" get pod "$2" -o json |
		jq -j --arg bin "$VIGIL_BUILD/bin/vigil-agent" --arg spool "$3" '
			.spec.containers[0] as $c |
			($c.volumeMounts[] | select(.name == "spool") | .mountPath) as $m |
			([$bin] + [$c.args[] | if . == $m then $spool else . end]) |
			map(. + "\u0000") | add'
}

# pod_env NS POD: NAME=VALUE lines of the pod's environment, resolved
pod_env() {
	local ns=$1 pod=$2 json name kind a b path key
	json=$(kubectl -n "$ns" get pod "$pod" -o json)
	while IFS=$'\t' read -r name kind a b; do
		case $kind in
		value) printf '%s=%s\n' "$name" "$a" ;;
		secret)
			printf '%s=%s\n' "$name" "$(kubectl -n "$ns" get secret "$a" -o json |
				jq -r --arg k "$b" '.data[$k]' | base64 -d)"
			;;
		field)
			# the downward API: metadata.annotations['k'], metadata.labels['k']
			path=${a%%\[*}
			key=${a#*\[\'}
			key=${key%\'\]}
			printf '%s=%s\n' "$name" "$(jq -r --arg p "${path#metadata.}" --arg k "$key" \
				'.metadata[$p][$k]' <<<"$json")"
			;;
		*) fail "pod $pod: env $name of a kind this harness cannot resolve" ;;
		esac
	done < <(jq -r '.spec.containers[0].env[] |
		if .value != null then [.name, "value", .value, ""]
		elif .valueFrom.secretKeyRef then
			[.name, "secret", .valueFrom.secretKeyRef.name, .valueFrom.secretKeyRef.key]
		elif .valueFrom.fieldRef then [.name, "field", .valueFrom.fieldRef.fieldPath, ""]
		else [.name, "other", "", ""] end | @tsv' <<<"$json")
}

# run_pod NS POD LOG [extra args]: the agent as the pod would run it, its
# spool in $AGENT_SPOOL_ROOT/<pod> (default $E2E_STATE/spool); the exit code
# is the agent's
run_pod() {
	local ns=$1 pod=$2 log=$3 spool=${AGENT_SPOOL_ROOT:-$E2E_STATE/spool}/$2
	shift 3
	mkdir -p "$spool"
	local -a cmd env
	mapfile -d '' cmd < <(pod_command "$ns" "$pod" "$spool")
	mapfile -t env < <(pod_env "$ns" "$pod")
	[ ${#cmd[@]} -gt 1 ] || fail "pod $ns/$pod: no command"
	env -i PATH="$PATH" "${env[@]}" "${cmd[@]}" "$@" >"$log" 2>&1
}
