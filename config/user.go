package config

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"

	"github.com/anycast-watchdog/anycast-watchdog/internal/command"
	"github.com/anycast-watchdog/anycast-watchdog/trust"
)

// Capabilities a process needs to start a child as another user.
const (
	capSetGID = 6
	capSetUID = 7
)

// system is what validation asks of the host beyond the file: who a user is
// and whether this process may become someone else. Tests fake it.
type system interface {
	LookupUser(name string) (*user.User, error)
	GroupIDs(u *user.User) ([]string, error)
	// Self is the process's effective uid and whether it holds CAP_SETUID
	// and CAP_SETGID.
	Self() (uid int, canSwitch bool, err error)
	// TrustProgram says whether another user than root and this process's
	// could change the program at path (trust.Program).
	TrustProgram(path string) error
}

type hostSystem struct{}

func (hostSystem) LookupUser(name string) (*user.User, error) {
	if _, err := strconv.ParseUint(name, 10, 32); err == nil {
		return user.LookupId(name)
	}
	return user.Lookup(name)
}

func (hostSystem) GroupIDs(u *user.User) ([]string, error) { return u.GroupIds() }

func (hostSystem) TrustProgram(path string) error { return trust.Program(path, trust.Self()) }

// auditSystem is the host, except that it leaves judging programs to
// doctor, which reports them as findings beside everything else.
type auditSystem struct{ hostSystem }

func (auditSystem) TrustProgram(string) error { return nil }

func (hostSystem) Self() (int, bool, error) {
	caps, err := command.OwnCaps()
	if err != nil {
		return 0, false, err
	}
	need := uint64(1)<<capSetUID | uint64(1)<<capSetGID
	return os.Geteuid(), caps.Effective&need == need, nil
}

// resolveUser turns a check's user into the credential it runs with, or
// nil when that is the daemon's own user. The daemon must be able to switch
// users: a check that cannot start would fail every round and withdraw a
// healthy service, so this is refused at load time instead.
func resolveUser(sys system, name string) (*Credential, error) {
	var unknown user.UnknownUserError
	var unknownID user.UnknownUserIdError
	u, err := sys.LookupUser(name)
	switch {
	case errors.As(err, &unknown), errors.As(err, &unknownID):
		return nil, errors.New("no such user")
	case err != nil:
		return nil, fmt.Errorf("look up user: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("user %s has a non-numeric id: %w", u.Username, err)
	}
	self, canSwitch, err := sys.Self()
	if err != nil {
		return nil, fmt.Errorf("read this process's capabilities: %w", err)
	}
	if int(uid) == self {
		return nil, nil
	}
	if !canSwitch {
		return nil, fmt.Errorf("anycast-watchdog runs as uid %d without CAP_SETUID and CAP_SETGID, "+
			"so it cannot start checks as uid %d; grant both (see anycast-watchdog.yaml(5)) or drop user", self, uid)
	}
	cred := &Credential{UID: uint32(uid), GID: uint32(gid)}
	ids, err := sys.GroupIDs(u)
	if err != nil {
		return nil, fmt.Errorf("supplementary groups of %s: %w", u.Username, err)
	}
	for _, id := range ids {
		g, err := strconv.ParseUint(id, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("user %s has a non-numeric group id %q", u.Username, id)
		}
		cred.Groups = append(cred.Groups, uint32(g))
	}
	return cred, nil
}
