package control

import (
	"fmt"
	"os"
	"os/user"
	"slices"
	"strconv"
)

// Access says who may change the daemon's state (drain, undrain, undamp,
// check, reload): root, the daemon's own user, and members of its group. Anyone who
// can reach the socket may read status.
type Access struct {
	UID   int    // the daemon's user
	GID   int    // the group whose members may write
	Group string // its name, for the refusal message
}

// AccessForProcess is the policy for the running daemon: its own effective
// user and group.
func AccessForProcess() Access {
	a := Access{UID: os.Geteuid(), GID: os.Getegid(), Group: strconv.Itoa(os.Getegid())}
	if g, err := user.LookupGroupId(a.Group); err == nil {
		a.Group = g.Name
	}
	return a
}

// writes reports whether cmd changes the daemon's state. Unknown commands
// count as writes, so a new command is protected until it says otherwise.
func writes(cmd string) bool { return cmd != CmdStatus }

// Allows reports whether peer may send cmd.
func (a Access) Allows(peer Peer, cmd string) bool {
	return !writes(cmd) || peer.UID == 0 || peer.UID == a.UID || peer.GID == a.GID || slices.Contains(peer.Groups, a.GID)
}

// refusal is the answer to a peer that may not send cmd.
func (a Access) refusal(peer Peer, cmd string) string {
	return fmt.Sprintf("permission denied: %s needs root or membership of group %s (gid %d); you are %s. "+
		"status needs no permission", cmd, a.Group, a.GID, peer.identity())
}
