// Package advertise decides, service by service, where its anycast prefixes
// go — the primary interface (lo), the last-resort interface, or neither —
// and keeps them there: it runs the checks on a schedule, feeds the results
// through rise/fall hysteresis (the withdraw checks' and, apart, the
// degrade checks'), remembers its flaps (flap damping), turns the state
// into a wish (advertise, withdraw, drain; held back from normal metric
// while damped or degraded), decides each prefix's place from the wish, where it is
// and the fleet view (who else advertises it, from the link-state database
// and from bgpd's iBGP paths), applies it with ip and confirms with FRR that
// the routing daemons (ospfd, ospf6d, bgpd: whichever run) follow.
//
// # Parts
//
//   - Supervisor (supervisor.go): owns the others; Start, Reload, Stop,
//     CheckNow; what it reports (report.go: Status, Progress, FRRHealth);
//     drains, persisted in state_dir (drains.go, statefile.go); the
//     damping penalties, the penaltyBook, persisted there too and cleared
//     by Undamp (penalties.go); the reconciler (reconcile.go).
//   - serviceLoop (loop.go): one per service, its state and its drain.
//     Its jobs: scheduling the rounds (schedule.go: the loop, the 25 ms
//     grid, the service's phase), its place in the interval (placement.go),
//     running a round (round.go: checks, a round's verdict per on_fail
//     class), observing
//     it (observe.go: Hysteresis (hysteresis.go) → the wish, the log
//     line, status), and its damping (damped.go: a withdrawal adds to the
//     penalty; the loop wakes at the release time).
//   - addressManager (addresses.go): the only writer of the interfaces. It
//     holds every prefix's wish and place; its worker decides (decide,
//     decide.go: a pure function) and applies (apply.go) every ip command,
//     and reconciles the interfaces with its decisions (reconcile.go), one
//     at a time.
//   - verifier (verify.go, readback.go): reads every routing daemon that
//     runs (the link-state databases, bgpd's table), checks that what is on
//     the interfaces is advertised, and fills the fleetStore (fleet.go)
//     that decisions, drains and status read; it tells the address manager
//     whether bgpd originates, which sets the order of its moves.
//   - barrier (barrier.go): the generations the address manager's wishes
//     and the verifier's reads are waited for by; lastErrors, the one way a
//     failure is logged when it begins and when it ends.
//
// What status shows is package status's model, derived from this live
// state when asked (serviceLoop.snapshot, addressManager.status,
// verifier.fill); nothing here stores a copy of it.
//
// # Goroutines
//
//   - one per service loop (serviceLoop.run), plus one per check while a
//     round runs; it also wakes at a damped service's release time;
//   - the address manager's worker (addressManager.run), started first and
//     ended last, so that on_exit: withdraw still has it; woken by wishes,
//     by each fleet read, and by its timer when a drain's grace ends or a
//     retry falls due;
//   - the reconciler (Supervisor.reconcileLoop): ends timed drains at the
//     shortest service interval, and asks the worker to reconcile: on each
//     change an interface's watch reports, every watchedReconcileEvery
//     while every interface is watched, at every tick while one is not;
//   - one watch per interface (Supervisor.watch: ip monitor), started again
//     after a backoff when it ends;
//   - the verifier (verifier.run), woken by the worker when a prefix's
//     presence changes, by status and scrapes that find the fleet view
//     old, and by its own timer: its own LSAs every 10 s; the area's
//     database, while a decision depends on it, 1 s after such a prefix
//     moved (fleetSettle) and every frr.fleet_interval; and to retry;
//   - waitReady, once, until every service has had its first verdict.
//
// A service loop owns its context and runs until stopped; the reconciler,
// the verifier and waitReady run under the context Start derives from its
// caller's, ended by Stop.
//
// # Locks
//
// Lock order: Supervisor.mu, then serviceLoop.mu, then addressManager.mu,
// then fleetStore.mu (each may also be taken alone); verifier.mu is taken
// alone; a barrier's lock and penaltyBook.mu are leaves, taken under any
// of them (penaltyBook.mu is held while it writes state_dir/damping.json,
// a file, never a command). No lock is
// ever held across a command (ip, vtysh) or while waiting for another
// goroutine: a wish is recorded under the locks and waited for
// (addressManager.wait) after they are released, so a hung ip or vtysh
// delays no status request and no other service.
// Reloads are kept apart by their caller (the daemon reloads from one
// goroutine), not by a lock.
//
// # Time
//
// Every wait goes through Clock. Unit tests run the loops in a
// testing/synctest bubble: its time moves only when every goroutine waits,
// and synctest.Wait says when they all do; the integration tier runs them
// on real time.
package advertise
