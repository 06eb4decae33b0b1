package unitwatch

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/anycast-watchdog/anycast-watchdog/status"
)

// changeBuffer is how many signals may wait to be read; more are dropped
// and reported as an overflow (the watcher then reads its units again). A
// busy host's signals of units nobody watches pass through it too.
const changeBuffer = 1024

// systemBus is a Bus over go-systemd's connection to the system bus.
type systemBus struct {
	conn     *sdbus.Conn
	updates  chan *sdbus.PropertiesUpdate
	errs     chan error
	changes  chan Change
	overflow chan struct{}
	lost     chan struct{}
	stop     chan struct{}
	once     sync.Once
}

// SystemBus connects to the system bus (DBUS_SYSTEM_BUS_ADDRESS, else
// /run/dbus/system_bus_socket) and subscribes to systemd's signals. Its
// connections end with ctx.
func SystemBus(ctx context.Context) (Bus, error) {
	var conns []*dbus.Conn
	conn, err := sdbus.NewConnection(func() (*dbus.Conn, error) {
		c, err := dbus.SystemBusPrivate(dbus.WithContext(ctx))
		if err != nil {
			return nil, err
		}
		// EXTERNAL with the numeric uid: no user name lookup.
		if err := c.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
			c.Close()
			return nil, err
		}
		if err := c.Hello(); err != nil {
			c.Close()
			return nil, err
		}
		conns = append(conns, c)
		return c, nil
	})
	if err != nil {
		for _, c := range conns {
			c.Close()
		}
		return nil, fmt.Errorf("connect to the system bus: %w", err)
	}
	b := &systemBus{conn: conn, updates: make(chan *sdbus.PropertiesUpdate, changeBuffer), errs: make(chan error, 1),
		changes: make(chan Change, changeBuffer), overflow: make(chan struct{}, 1), lost: make(chan struct{}), stop: make(chan struct{})}
	conn.SetPropertiesSubscriber(b.updates, b.errs)
	if err := conn.Subscribe(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("subscribe to systemd's unit signals: %w", err)
	}
	go b.forward(conns)
	return b, nil
}

// forward turns property updates into changes until the connection ends
// or Close; it closes lost when either connection ends.
func (b *systemBus) forward(conns []*dbus.Conn) {
	defer close(b.lost)
	for {
		select {
		case <-b.stop:
			return
		case <-conns[0].Context().Done():
			return
		case <-conns[1].Context().Done():
			return
		case <-b.errs: // go-systemd's only error here: the update channel was full
			select {
			case b.overflow <- struct{}{}:
			default:
			}
		case u := <-b.updates:
			c, ok := changeOf(u.UnitName, u.Changed)
			if !ok {
				continue
			}
			select {
			case b.changes <- c:
			default:
				select {
				case b.overflow <- struct{}{}:
				default:
				}
			}
		}
	}
}

// changeOf is the change of state a PropertiesChanged signal carries, if
// it carries one.
func changeOf(unit string, changed map[string]dbus.Variant) (Change, bool) {
	active, ok := changed["ActiveState"].Value().(string)
	if !ok {
		return Change{}, false
	}
	sub, _ := changed["SubState"].Value().(string)
	return Change{Unit: unit, ActiveState: active, SubState: sub}, true
}

func (b *systemBus) Changes() <-chan Change    { return b.changes }
func (b *systemBus) Overflow() <-chan struct{} { return b.overflow }
func (b *systemBus) Lost() <-chan struct{}     { return b.lost }

func (b *systemBus) Close() {
	b.once.Do(func() {
		close(b.stop)
		b.conn.Close()
	})
}

// Unit reads the unit's load, active and sub state in one call (the Unit
// interface's properties), and the result of a service unit that is not
// active.
func (b *systemBus) Unit(ctx context.Context, name string) (status.Unit, error) {
	props, err := b.conn.GetUnitPropertiesContext(ctx, name)
	if err != nil {
		return status.Unit{}, fmt.Errorf("read unit %s: %w", name, err)
	}
	u := status.Unit{Name: name, Watched: true}
	u.LoadState, _ = props["LoadState"].(string)
	u.ActiveState, _ = props["ActiveState"].(string)
	u.SubState, _ = props["SubState"].(string)
	if u.LoadState == "" || u.ActiveState == "" {
		return u, fmt.Errorf("read unit %s: no LoadState or ActiveState among its properties", name)
	}
	if u.LoadState == "loaded" && !u.Active() && isService(name) {
		if u.Result, err = b.Result(ctx, name); err != nil {
			return u, err
		}
	}
	return u, nil
}

// Result reads the service unit's Result, ExecMainCode and ExecMainStatus
// and says in words how its main process last ended.
func (b *systemBus) Result(ctx context.Context, name string) (string, error) {
	props, err := b.conn.GetUnitTypePropertiesContext(ctx, name, "Service")
	if err != nil {
		return "", fmt.Errorf("read the result of %s: %w", name, err)
	}
	result, _ := props["Result"].(string)
	code, _ := props["ExecMainCode"].(int32)
	st, _ := props["ExecMainStatus"].(int32)
	return resultText(result, code, st), nil
}

// The si_code values of ExecMainCode (waitid(2)).
const (
	cldExited = 1
	cldKilled = 2
	cldDumped = 3
)

// resultText says how a service's main process ended: "" for success,
// "signal SEGV", "exit status 1", or systemd's own word (oom-kill,
// timeout, watchdog, start-limit-hit, …).
func resultText(result string, code, st int32) string {
	switch {
	case result == "" || result == "success":
		return ""
	case code == cldKilled || code == cldDumped:
		sig := strings.TrimPrefix(unix.SignalName(unix.Signal(st)), "SIG")
		if sig == "" {
			sig = strconv.Itoa(int(st))
		}
		if result == "core-dump" || code == cldDumped {
			return "signal " + sig + ", core dumped"
		}
		if result == "signal" {
			return "signal " + sig
		}
		return result + ", signal " + sig
	case code == cldExited && result == "exit-code":
		return "exit status " + strconv.Itoa(int(st))
	}
	return result
}
