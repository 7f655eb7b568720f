// Command etcd is the upstream etcd server, built from the pinned
// go.etcd.io/etcd/server/v3 module. It only calls the upstream entry point
// (the same one etcd's own root main.go calls).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
