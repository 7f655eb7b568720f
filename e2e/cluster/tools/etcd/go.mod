// Pinned upstream etcd server and etcdctl for vigil's local test cluster.
// Built by e2e/cluster/build.sh; never imported by vigil itself.
module vigil.local/e2e/cluster/tools/etcd

go 1.26.0
