package edge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/oklog/ulid/v2"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/httpapi"
	"github.com/edgeacs/edgeacs/internal/badgergc"
	"github.com/edgeacs/edgeacs/provision/script"
)

// ErrNotFound means an unknown device, task or file (the API answers
// 404). It is httpapi.ErrNotFound, as the core's is, so errors.Is
// matches it whichever package wrapped it.
var ErrNotFound = httpapi.ErrNotFound

// ErrTaskRunning means a task cannot be deleted because a session is
// executing it or a CPE is still working on it (the API answers 409).
var ErrTaskRunning = httpapi.Mark(errors.New("edge: task is running"), httpapi.ErrConflict)

// ErrTaskExists means AddTask was given the ID of a task the cache already
// holds; the stored task is left exactly as it was (the API answers 409).
var ErrTaskExists = httpapi.Mark(errors.New("edge: task already exists"), httpapi.ErrConflict)

// Key layout (see DESIGN.md "Data"). Every key starts with a one-letter
// prefix and a slash; device IDs never contain '/', because fleet.DeviceID
// percent-encodes it, so "<prefix>/<device>/" bounds one device's keys.
const (
	pDevice = "d/"  // d/<device> → Device (CBOR)
	pTree   = "P/"  // P/<device> → the device's parameter tree, one record (params.go)
	pTask   = "t/"  // t/<ulid> → fleet record of a Task
	pOpen   = "q/"  // q/<device>/<ulid> → "" for pending and running tasks, FIFO by ULID
	pDone   = "h/"  // h/<device>/<ulid> → "" for finished tasks
	pFault  = "f/"  // f/<device>/<id> → DeviceFault (CBOR)
	pOutbox = "o/"  // o/<seq big-endian> → tag, staging time, fleet record (DeviceDelta, Task or TaskDrop); see outbox.go
	pCred   = "c/"  // c/<device> → credRec (CBOR)
	pUser   = "u/"  // u/<username> → []credRef (CBOR): who uses that per-device username; see credidx.go
	pFile   = "n/"  // n/<name> → fleet record of a FileMeta
	pPreset = "s/"  // s/<name> → fleet record of a Preset (from the core)
	pProv   = "pr/" // pr/<name> → fleet record of a Provision (from the core)
	pVParam = "vp/" // vp/<name> → fleet record of a VirtualParameter (from the core)
	pRevoke = "r/"  // r/<edge name> → "" (edges the core revoked)
	pLocal  = "l/"  // l/<key of a preset, provision or virtual parameter> → "": made at this edge (localprov.go)
	kCount  = "m/devcount"
	// kCredIndex marks that every c/ record is in the u/ index (written
	// by the first Open that built it); kFileKey is the HMAC key of signed
	// /files/ URLs (fileurl.go).
	kCredIndex = "m/credidx"
	kFileKey   = "m/filekey"
	// kDownEdge and kDownShared hold the downlink positions stored (8
	// bytes big-endian): this edge's own log and the fleet-wide one.
	kDownEdge   = "m/down"
	kDownShared = "m/shared"
	// kDefaults marks that the default presets were made (a standalone
	// edge's first start): they are never made again.
	kDefaults = "m/defaults"
	// kLayout marks that no parameter is stored under the old p/ keys
	// (migrateParamKeys).
	kLayout = "m/layout"
	// API tokens live under pToken, "k/" (tokens.go).
)

// cborEnc and cborDec are the project's one CBOR profile (fleet.CBOR).
var (
	cborEnc = fleet.CBOR.Enc
	cborDec = fleet.CBOR.Dec
)

// CacheOptions configures OpenCache.
type CacheOptions struct {
	// SyncWrites fsyncs every commit. Without it every commit still reaches
	// the OS before it returns (a killed process loses nothing), and the
	// writes a CPE or an operator was promised survive a power loss too:
	// Informs with events the CPE will not resend, TransferComplete, task
	// results and accepted tasks wait for a shared group fsync (see
	// groupSync). Only plain periodic Informs skip it, which is what makes
	// the hot path fast.
	SyncWrites bool
	// Logger receives the cache's warnings and Badger's warnings and errors
	// (Badger's info chatter is dropped). Nil means slog.Default().
	Logger *slog.Logger
	// InMemory keeps everything in RAM (tests); dir is ignored.
	InMemory bool
	// EdgeID stamps the DeviceDelta records of the outbox.
	EdgeID string
	// DisableOutbox skips the outbox (a standalone edge with no core link
	// would otherwise grow it without bound).
	DisableOutbox bool
	// OnWake, when set, is called after StoreDownlink committed a task the
	// core asked to run now (DownRecord.Wake), once per device and batch;
	// the node sends the device a connection request. It must not block.
	OnWake func(deviceID string)
	// OnTaskFinal, when set, is called once for every task that reached a
	// final status (done, fault, expired), after the commit that made it
	// final: at session End, at TransferComplete, or when a transfer timed
	// out. It runs on the session's goroutine and must be quick and must
	// not modify the task.
	OnTaskFinal func(*fleet.Task)
	// StoreFailureLimit is how long writes may keep failing with no
	// success before the store is declared unusable (StoreFailed closes);
	// zero means DefaultStoreFailureLimit.
	StoreFailureLimit time.Duration
	// OnStoreFailure, when set, counts a failed write by operation
	// ("update", "sync"); it must be quick.
	OnStoreFailure func(op string)
	// tune adjusts Badger's options (tests: a small memtable makes
	// ErrTxnTooBig reachable with a small backlog).
	tune func(badger.Options) badger.Options
	// DownloadTimeout is how long a Download or Upload the CPE accepted
	// with status 1 may go without TransferComplete before the device's
	// next session ends it as fault "timeout". Zero means
	// DefaultDownloadTimeout.
	DownloadTimeout time.Duration
	// DiagnosticsTimeout is how long a diagnostic the CPE accepted may go
	// without 8 DIAGNOSTICS COMPLETE before it ends as fault
	// diagnostics_timeout (diag.go). Zero means DefaultDiagnosticsTimeout.
	DiagnosticsTimeout time.Duration
	// HistoryPoints and HistoryMaxAge bound each recorded parameter
	// series (history.go); zero means fleet.HistoryPoints and
	// fleet.HistoryMaxAge.
	HistoryPoints int
	HistoryMaxAge time.Duration
	// ScriptLimits bound each run of a provision script in a session
	// (zero fields: the sandbox's defaults, 50 ms and 64 MiB).
	ScriptLimits script.Limits
	// GPVBatchSize bounds the names of the presets' GetParameterValues
	// and SetParameterValues (zero: provision.DefaultBatchSize).
	GPVBatchSize int
	// InterimPresets are the presets an edge synced to a core runs until
	// its first fleet-wide downlink record arrives: the defaults
	// (preset.Defaults), so that CPEs informing at a new edge that has not
	// reached its core yet get their connection-request credentials. From
	// that record on, the presets are the core's (none, if the operator
	// deleted them there).
	InterimPresets []fleet.Preset
	// ProvisionRetryDelay is how long a preset channel's fault holds its
	// presets back before a session retries them; each retry that faults
	// again doubles it (GenieACS's cwmp.retryDelay), up to
	// MaxProvisionRetryDelay. Zero means DefaultProvisionRetryDelay.
	ProvisionRetryDelay time.Duration
	// ManualCRCredentials: the edge makes up no connection-request
	// passwords (preset.CRPasswordPath reads NULL for a device whose
	// password it does not know).
	ManualCRCredentials bool
	// Memory is the budget Badger's memtables, block cache and index cache
	// are sized from (budgetOptions); zero means DefaultCacheMemory.
	Memory ByteSize
}

// DefaultDownloadTimeout is CacheOptions.DownloadTimeout's default, the
// same hour as GenieACS's cwmp.downloadTimeout.
const DefaultDownloadTimeout = time.Hour

// DefaultProvisionRetryDelay is CacheOptions.ProvisionRetryDelay's
// default, GenieACS's cwmp.retryDelay; MaxProvisionRetryDelay bounds the
// doubled delays (GenieACS's grow without bound: a channel that faulted
// twenty times would wait ten years).
const (
	DefaultProvisionRetryDelay = 5 * time.Minute
	MaxProvisionRetryDelay     = 24 * time.Hour
)

// Device is the cached identity and reachability of a CPE.
type Device struct {
	ID                          string    `json:"_id" cbor:"1,keyasint"`
	OUI                         string    `json:"oui" cbor:"2,keyasint"`
	ProductClass                string    `json:"productClass,omitempty" cbor:"3,keyasint,omitempty"`
	SerialNumber                string    `json:"serialNumber" cbor:"4,keyasint"`
	Manufacturer                string    `json:"manufacturer,omitempty" cbor:"5,keyasint,omitempty"`
	Root                        string    `json:"root,omitempty" cbor:"6,keyasint,omitempty"`
	Registered                  time.Time `json:"registered" cbor:"7,keyasint"`
	LastInform                  time.Time `json:"lastInform" cbor:"8,keyasint"`
	LastBoot                    time.Time `json:"lastBoot,omitzero" cbor:"9,keyasint,omitzero"`
	LastBootstrap               time.Time `json:"lastBootstrap,omitzero" cbor:"10,keyasint,omitzero"`
	LastEvents                  []string  `json:"lastEvents,omitempty" cbor:"11,keyasint,omitempty"`
	RemoteAddr                  string    `json:"remoteAddr,omitempty" cbor:"12,keyasint,omitempty"`
	ConnectionRequestURL        string    `json:"connectionRequestURL,omitempty" cbor:"13,keyasint,omitempty"`
	UDPConnectionRequestAddress string    `json:"udpConnectionRequestAddress,omitempty" cbor:"14,keyasint,omitempty"`
	STUNEnable                  bool      `json:"stunEnable,omitempty" cbor:"15,keyasint,omitempty"`
	CRUsername                  string    `json:"connectionRequestUsername,omitempty" cbor:"16,keyasint,omitempty"`
	CRPassword                  string    `json:"-" cbor:"17,keyasint,omitempty"`
	// Username and Password are per-device CPE→ACS credentials, kept under
	// their own key (c/<id>) so they can be provisioned before the first
	// Inform; Device fills them in.
	Username        string `json:"-" cbor:"-"`
	Password        string `json:"-" cbor:"-"`
	SoftwareVersion string `json:"softwareVersion,omitempty" cbor:"18,keyasint,omitempty"`
	// RootListed is when the CPE's top level was last listed by a
	// provisioning run (the tree's root has no parameter record): a
	// preset naming the other data model's root learns it is absent
	// without asking in every session. 0 BOOTSTRAP clears it.
	RootListed time.Time `json:"-" cbor:"19,keyasint,omitzero"`
	// SmallGPV: the CPE could not take a GetParameterValues of more than
	// provision.SmallBatchSize names (it faulted 9002/9004, or hung up or
	// went silent with one outstanding). Its GetParameterValues are that
	// many names at most from then on, in every session: a CPE that
	// chokes on a large reply does so again, and one that drops the
	// session would never register. A bootstrap keeps it (same firmware).
	SmallGPV bool `json:"-" cbor:"50,keyasint,omitempty"`
	// InformInterval is the periodic inform interval the cached tree
	// holds (its root's ManagementServer.PeriodicInformInterval), kept
	// in step by every write of the tree (saveParams): counting the fleet's
	// online states reads device records only. -1: the tree has none; 0:
	// a record older than the field (the tree is read instead).
	InformInterval time.Duration `json:"-" cbor:"51,keyasint,omitempty"`
}

// Parameter is one node of a device's cached parameter tree, in the
// shape both management APIs show it.
type Parameter = fleet.Parameter

// paramRec is the stored form of a Parameter: a CBOR array, a few dozen
// bytes for a typical leaf.
type paramRec struct {
	_          struct{} `cbor:",toarray"`
	Value      string
	Type       string
	Flags      uint8 // flagObject | flagWritableKnown | flagWritable | flagAttrKnown | flagValue | flagListed
	Timestamp  int64 // unix nanoseconds
	Notify     int8
	AccessList []string
}

const (
	flagObject = 1 << iota
	flagWritableKnown
	flagWritable
	flagAttrKnown
	// flagValue: Value and Type were read from the CPE or written to it
	// (a record made by GetParameterNames alone has neither). Records
	// written before the flag existed are read as known when they have a
	// type or a value (cacheTree).
	flagValue
	// flagListed: the object's complete child list was read at Timestamp
	// (written by the provisioning engine's listings, see cacheTree).
	flagListed
)

func (r *paramRec) public() Parameter {
	p := Parameter{Value: r.Value, Type: r.Type, Object: r.Flags&flagObject != 0, AccessList: r.AccessList}
	if r.Timestamp != 0 {
		p.Timestamp = time.Unix(0, r.Timestamp).UTC()
	}
	if r.Flags&flagWritableKnown != 0 {
		w := r.Flags&flagWritable != 0
		p.Writable = &w
	}
	if r.Flags&flagAttrKnown != 0 {
		n := int(r.Notify)
		p.Notification = &n
	}
	return p
}

// DeviceFault is a fault recorded against a device: a task that ended in
// fault, a failed transfer the CPE reported on its own, or a preset
// channel's provisions that faulted (skipped until the fault is deleted).
type DeviceFault struct {
	// ID is the task ID, "<kind>-<unix nanos>" for CPE-initiated reports,
	// or "<device>:<channel>" for a preset channel's fault (GenieACS's ID).
	ID     string `json:"_id" cbor:"1,keyasint"`
	Device string `json:"device" cbor:"2,keyasint"`
	Task   string `json:"task,omitempty" cbor:"3,keyasint,omitempty"`
	// Channel is the preset channel a provisioning fault stopped.
	Channel   string            `json:"channel,omitempty" cbor:"8,keyasint,omitempty"`
	Code      string            `json:"code" cbor:"4,keyasint"`
	Message   string            `json:"message" cbor:"5,keyasint"`
	Detail    map[string]string `json:"detail,omitempty" cbor:"6,keyasint,omitempty"`
	Timestamp time.Time         `json:"timestamp" cbor:"7,keyasint"`
	// Retries counts the retries of a preset channel that faulted again:
	// the next is due at Timestamp + the retry delay doubled Retries
	// times (retryAt).
	Retries int `json:"retries,omitempty" cbor:"9,keyasint,omitempty"`
}

type credRec struct {
	Username string `cbor:"1,keyasint"`
	Password string `cbor:"2,keyasint"`
}

// Cache is the edge's Badger store: devices, parameter trees, tasks,
// faults, credentials, file metadata, API tokens, what the core sent
// (presets, revocations, downlink positions) and the outbox. It is the only type
// that touches Badger, and what cmd/edgeacs hands the sync client as its
// Outbox, Inbox and HealthSource. Safe for concurrent use.
type Cache struct {
	db   *badger.DB
	log  *slog.Logger
	opts CacheOptions

	devices  atomic.Int64
	ob       *outbox
	sessions rateMeter // sessions begun, for Health
	// taskGen counts commits that added tasks (AddTask, the downlink),
	// bumped after each commit: a session reads the device's open tasks
	// again only when it moved (SessionWork.nextTask), which spares
	// every session of a fleet with no new task a read transaction
	// (Badger's read timestamps queue behind the commits in flight: a
	// storm's sessions spent their time there).
	taskGen atomic.Uint64

	gsync *groupSync // coalesced fsyncs for promised writes when SyncWrites is off
	logs  *logSyncer // what gsync runs
	// guard turns failed writes into ErrStoreFailed and stops every
	// write once the store is unusable (storeguard.go).
	guard *storeGuard

	mu       sync.Mutex
	waiters  map[string]chan struct{} // task ID → closed when the task becomes final or is deleted
	inflight map[string]bool          // task IDs a live session holds
	// queueWatch: device ID → closed when a task is next queued for it
	// (a lingering session waits on it, see Server.linger).
	queueWatch map[string]chan struct{}
	closed     bool

	// files is the file store once it can fetch blobs from the core
	// (FileStore.SetFetcher): downlink tasks and sessions ask it to.
	files atomic.Pointer[FileStore]

	// fileKey signs the /files/ URLs put in Downloads (fileurl.go).
	fileKey []byte

	// tokens indexes the stored API tokens by hash (tokens.go).
	tokens tokenIndex

	// presets are the stored presets, compiled (presets.go).
	presets presetCache
	// scripts are the stored provision scripts, compiled (scripts.go).
	scripts scriptCache
	// history is what the presets' history lists name (history.go).
	history atomic.Pointer[historySet]

	// afterPresetsListed, set by tests only, runs inside presetsToRun's
	// view between its two reads.
	afterPresetsListed func()
}

// badgerLogger forwards Badger's warnings and errors to slog and drops the
// info and debug chatter it prints on every open and compaction.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error("badger: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn("badger: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (badgerLogger) Infof(string, ...any)  {}
func (badgerLogger) Debugf(string, ...any) {}

// OpenCache opens (or creates) the cache in dir. It reads no device
// records: the device count comes from a counter written by the last clean
// Close, or after a crash from a key-only scan of the device prefix.
func OpenCache(dir string, opts CacheOptions) (*Cache, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	bo := badger.DefaultOptions(dir).WithSyncWrites(opts.SyncWrites).WithLogger(badgerLogger{log})
	if opts.Memory == 0 {
		opts.Memory = DefaultCacheMemory
	}
	bo = budgetOptions(bo, opts.Memory)
	if opts.InMemory {
		bo = bo.WithDir("").WithValueDir("").WithInMemory(true)
	}
	if opts.tune != nil {
		bo = opts.tune(bo)
	}
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("open cache %s: %w", dir, err)
	}
	if opts.DownloadTimeout <= 0 {
		opts.DownloadTimeout = DefaultDownloadTimeout
	}
	if opts.ProvisionRetryDelay <= 0 {
		opts.ProvisionRetryDelay = DefaultProvisionRetryDelay
	}
	if opts.DiagnosticsTimeout <= 0 {
		opts.DiagnosticsTimeout = DefaultDiagnosticsTimeout
	}
	if opts.HistoryPoints <= 0 {
		opts.HistoryPoints = fleet.HistoryPoints
	}
	if opts.HistoryMaxAge <= 0 {
		opts.HistoryMaxAge = fleet.HistoryMaxAge
	}
	c := &Cache{db: db, log: log, opts: opts, waiters: map[string]chan struct{}{}, inflight: map[string]bool{}, queueWatch: map[string]chan struct{}{}}
	// Not Badger's own Sync, which stops the store while it runs (see
	// logSyncer); durable never syncs an in-memory or always-synced store.
	c.logs = newLogSyncer(dir)
	c.gsync = newGroupSync(c.logs.sync, syncPace)
	c.guard = newStoreGuard(log, opts.StoreFailureLimit)
	c.guard.onFailure = opts.OnStoreFailure
	if err := c.loadCounters(); err != nil {
		db.Close()
		return nil, err
	}
	if err := migrateParamKeys(db, log); err != nil {
		db.Close()
		return nil, fmt.Errorf("open cache %s: %w", dir, err)
	}
	if c.ob, err = openOutbox(db, log, opts.DisableOutbox); err != nil {
		db.Close()
		return nil, fmt.Errorf("open cache %s: %w", dir, err)
	}
	if err := c.buildCredIndex(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open cache %s: %w", dir, err)
	}
	if c.fileKey, err = c.loadFileKey(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open cache %s: %w", dir, err)
	}
	if err := c.loadTokens(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open cache %s: %w", dir, err)
	}
	return c, nil
}

func (c *Cache) loadCounters() error {
	var count int64 = -1
	err := c.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(kCount))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err == nil {
				count = n
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("open cache: read device count: %w", err)
	}
	if count < 0 {
		// No clean-shutdown counter: count device keys (no values read).
		count, err = c.countKeys(pDevice)
		if err != nil {
			return fmt.Errorf("open cache: count devices: %w", err)
		}
	} else if err := c.db.Update(func(txn *badger.Txn) error { return txn.Delete([]byte(kCount)) }); err != nil {
		// The counter is only valid until the next write; drop it so a
		// crash from here on falls back to counting.
		return fmt.Errorf("open cache: reset device count: %w", err)
	}
	c.devices.Store(count)
	return nil
}

func (c *Cache) countKeys(prefix string) (int64, error) {
	var n int64
	err := c.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.PrefetchValues = false
		o.Prefix = []byte(prefix)
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	return n, err
}

// cacheCloseTimeout bounds Badger's Close. With its directory gone
// (removed under a stopping edge) Badger retries writing the memtable out
// every second for ever, and the edge never exited. Giving up loses
// nothing acknowledged: that is in the synced logs, replayed at the next
// open as after a crash (TestCrashDurability).
var cacheCloseTimeout = 30 * time.Second

// Close writes the device counter for a fast next open and closes Badger.
// Waiters in WaitTask fall back to their context.
func (c *Cache) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.guard.closing.Store(true)
	var werr error
	if !c.unusable() {
		// A store declared unusable gets no write: after a lost memtable
		// Badger's next write exits the process. The counter is only a
		// shortcut; the next open counts the devices instead.
		werr = c.db.Update(func(txn *badger.Txn) error {
			return txn.Set([]byte(kCount), []byte(strconv.FormatInt(c.devices.Load(), 10)))
		})
	}
	errc := make(chan error, 1)
	go func() { errc <- c.db.Close() }()
	var err error
	select {
	case err = <-errc:
	case <-time.After(cacheCloseTimeout):
		// Badger is left retrying: the process is stopping.
		err = fmt.Errorf("the store did not close within %s (is %s still there and writable?)", cacheCloseTimeout, c.db.Opts().Dir)
	}
	c.logs.close()
	if err != nil {
		return fmt.Errorf("close cache: %w", err)
	}
	if werr != nil {
		return fmt.Errorf("close cache: write device count: %w", werr)
	}
	return nil
}

// RunGC runs Badger's value-log GC every five minutes until ctx is done.
func (c *Cache) RunGC(ctx context.Context) {
	c.runGC(ctx, 5*time.Minute)
}

func (c *Cache) runGC(ctx context.Context, every time.Duration) {
	if c.opts.InMemory {
		return
	}
	badgergc.Run(ctx, every, func(ratio float64) error {
		if c.unusable() {
			return ErrStoreUnusable
		}
		return c.db.RunValueLogGC(ratio)
	}, c.log)
}

// DeviceCount is the number of cached devices.
func (c *Cache) DeviceCount() int { return int(c.devices.Load()) }

// Health is what the edge reports about itself on the sync link's
// heartbeats and in /healthz: sessions begun per second over the last few
// seconds, the outbox backlog and its age, and the device count.
func (c *Cache) Health() fleet.EdgeHealth {
	now := time.Now()
	return fleet.EdgeHealth{
		SessionsPerSec: c.sessions.rate(now),
		OutboxLen:      c.ob.length.Load(),
		Devices:        c.devices.Load(),
		OldestUnsent:   c.ob.age(now),
	}
}

// rateWindow is how many whole seconds Health's session rate averages.
const rateWindow = 5

// rateMeter counts events in one-second buckets, so a rate over the last
// few seconds costs no goroutine and no history.
type rateMeter struct {
	mu      sync.Mutex
	buckets [rateWindow + 1]struct{ sec, n int64 }
}

func (m *rateMeter) add(now time.Time) {
	sec := now.Unix()
	m.mu.Lock()
	b := &m.buckets[uint64(sec)%uint64(len(m.buckets))]
	if b.sec != sec {
		b.sec, b.n = sec, 0
	}
	b.n++
	m.mu.Unlock()
}

// rate is the events per second over the rateWindow whole seconds before
// now's (the current second is still filling).
func (m *rateMeter) rate(now time.Time) float64 {
	cur := now.Unix()
	var sum int64
	m.mu.Lock()
	for k := int64(1); k <= rateWindow; k++ {
		if b := m.buckets[uint64(cur-k)%uint64(len(m.buckets))]; b.sec == cur-k {
			sum += b.n
		}
	}
	m.mu.Unlock()
	return float64(sum) / rateWindow
}

// SyncRounds is how many fsync rounds durable has run.
func (c *Cache) SyncRounds() uint64 { return c.gsync.rounds.Load() }

// durable makes the commits made so far survive a power loss. It is free
// when every commit already fsyncs or nothing is on disk.
func (c *Cache) durable() error {
	if c.opts.SyncWrites || c.opts.InMemory {
		return nil
	}
	if err := c.guard.before("sync"); err != nil {
		return err
	}
	if err := c.guard.after("sync", c.gsync.Sync()); err != nil {
		return fmt.Errorf("sync cache: %w", err)
	}
	return nil
}

// update runs fn in a read-write transaction, retrying on conflicts with
// concurrent sessions (fn must be safe to rerun from scratch).
//
// A failed commit is a storage failure (ErrStoreFailed, see storeGuard);
// fn's own errors come back as they are.
func (c *Cache) update(fn func(txn *badger.Txn) error) error {
	if err := c.guard.before("update"); err != nil {
		return err
	}
	var err, fnErr error
	for range 20 {
		err = c.db.Update(func(txn *badger.Txn) error {
			fnErr = fn(txn)
			return fnErr
		})
		if !errors.Is(err, badger.ErrConflict) {
			break
		}
	}
	return c.settle("update", err, fnErr)
}

// settle reports a read-write transaction's outcome to the guard: err is
// what db.Update returned, fnErr what the closure returned on the last
// attempt. Only an error of the commit itself is the store's.
func (c *Cache) settle(op string, err, fnErr error) error {
	switch {
	case err == nil:
		c.guard.ok()
		return nil
	case fnErr != nil && err == fnErr, errors.Is(err, badger.ErrConflict):
		return err
	}
	return c.guard.after(op, err)
}

func getCBOR(txn *badger.Txn, key string, v any) error {
	item, err := txn.Get([]byte(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	return item.Value(func(b []byte) error { return cborDec.Unmarshal(b, v) })
}

func setCBOR(txn *badger.Txn, key string, v any) error {
	b, err := cborEnc.Marshal(v)
	if err != nil {
		return err
	}
	return txn.Set([]byte(key), b)
}

func getRecord(txn *badger.Txn, key string, v any) error {
	item, err := txn.Get([]byte(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	return item.Value(func(b []byte) error { return fleet.Unmarshal(b, v) })
}

// listRecords decodes every record under prefix in txn, in key order.
func listRecords[T any](txn *badger.Txn, prefix string) ([]T, error) {
	var out []T
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte(prefix)
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		var v T
		if err := it.Item().Value(func(b []byte) error { return fleet.Unmarshal(b, &v) }); err != nil {
			return nil, fmt.Errorf("decode %s: %w", it.Item().Key(), err)
		}
		out = append(out, v)
	}
	return out, nil
}

// viewRecords is listRecords in a read transaction of its own, its
// error naming what was listed.
func viewRecords[T any](c *Cache, prefix, what string) ([]T, error) {
	var out []T
	err := c.db.View(func(txn *badger.Txn) error {
		var err error
		out, err = listRecords[T](txn, prefix)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", what, err)
	}
	return out, nil
}

func setRecord(txn *badger.Txn, key string, v any) error {
	b, err := fleet.Marshal(v)
	if err != nil {
		return err
	}
	return txn.Set([]byte(key), b)
}

// keysWithPrefix lists the keys under prefix (values not read), as strings.
func keysWithPrefix(txn *badger.Txn, prefix string) []string {
	o := badger.DefaultIteratorOptions
	o.PrefetchValues = false
	o.Prefix = []byte(prefix)
	it := txn.NewIterator(o)
	defer it.Close()
	var keys []string
	for it.Rewind(); it.Valid(); it.Next() {
		keys = append(keys, string(it.Item().Key()))
	}
	return keys
}

func deletePrefix(txn *badger.Txn, prefix string) ([]string, error) {
	keys := keysWithPrefix(txn, prefix)
	for _, k := range keys {
		if err := txn.Delete([]byte(k)); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// validID rejects IDs that could escape their key prefix.
func validID(id string) bool {
	return id != "" && len(id) <= 1024 && !strings.ContainsAny(id, "/\x00")
}

// editDevice changes the device record in txn: fn edits it and reports
// whether it changed anything to store. A device deleted through the API
// meanwhile is left deleted.
func editDevice(txn *badger.Txn, id string, fn func(d *Device) bool) error {
	var dev Device
	switch err := getCBOR(txn, pDevice+id, &dev); {
	case errors.Is(err, ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("load device: %w", err)
	}
	if !fn(&dev) {
		return nil
	}
	if err := setCBOR(txn, pDevice+id, &dev); err != nil {
		return fmt.Errorf("store device: %w", err)
	}
	return nil
}

// ---- devices ----

// Device returns the cached device with its per-device credentials, or ErrNotFound.
func (c *Cache) Device(id string) (*Device, error) {
	if !validID(id) {
		return nil, fmt.Errorf("device %q: %w", id, ErrNotFound)
	}
	var d Device
	err := c.db.View(func(txn *badger.Txn) error {
		if err := getCBOR(txn, pDevice+id, &d); err != nil {
			return err
		}
		var cr credRec
		if err := getCBOR(txn, pCred+id, &cr); err == nil {
			d.Username, d.Password = cr.Username, cr.Password
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", id, err)
	}
	return &d, nil
}

// SetDeviceCredentials stores the per-device CPE→ACS credentials; the
// device need not have informed yet: they apply from its first Inform. An
// empty username removes them. Credentials too long or with control
// characters are ErrBadCredentials; a username already used by
// MaxDevicesPerUsername other devices is ErrUsernameTaken.
func (c *Cache) SetDeviceCredentials(id, username, password string) error {
	if !validID(id) {
		return fmt.Errorf("set credentials of %q: bad device id: %w", id, ErrBadCredentials)
	}
	if username != "" {
		if err := checkCredentials(username, password); err != nil {
			return fmt.Errorf("set credentials of %s: %w", id, err)
		}
	}
	err := c.update(func(txn *badger.Txn) error {
		var old credRec
		switch err := getCBOR(txn, pCred+id, &old); {
		case err == nil:
			if err := removeCredRef(txn, old.Username, id); err != nil {
				return err
			}
		case !errors.Is(err, ErrNotFound):
			return err
		}
		if username == "" {
			return txn.Delete([]byte(pCred + id))
		}
		if err := addCredRef(txn, username, credRef{Device: id, Password: password}); err != nil {
			return err
		}
		return setCBOR(txn, pCred+id, credRec{Username: username, Password: password})
	})
	if err != nil {
		return fmt.Errorf("set credentials of %s: %w", id, err)
	}
	return nil
}

// Credentials returns the per-device CPE→ACS credentials, or ErrNotFound
// when the device uses the shared ones.
func (c *Cache) Credentials(id string) (username, password string, err error) {
	if !validID(id) {
		return "", "", fmt.Errorf("credentials of %q: %w", id, ErrNotFound)
	}
	var cr credRec
	if err := c.db.View(func(txn *badger.Txn) error { return getCBOR(txn, pCred+id, &cr) }); err != nil {
		return "", "", fmt.Errorf("credentials of %s: %w", id, err)
	}
	return cr.Username, cr.Password, nil
}

// Parameters returns the device's cached parameter tree, path → node.
func (c *Cache) Parameters(id string) (map[string]Parameter, error) {
	if !validID(id) {
		return nil, fmt.Errorf("parameters of %q: %w", id, ErrNotFound)
	}
	out := map[string]Parameter{}
	err := c.db.View(func(txn *badger.Txn) error {
		if _, err := txn.Get([]byte(pDevice + id)); errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		p, err := loadParams(txn, id)
		if err != nil {
			return err
		}
		for i := range p.ents {
			out[p.ents[i].path] = p.ents[i].rec.public()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("parameters of %s: %w", id, err)
	}
	return out, nil
}

// Parameter returns one cached parameter, or ErrNotFound.
func (c *Cache) Parameter(id, path string) (Parameter, error) {
	var r paramRec
	if !validID(id) {
		return Parameter{}, fmt.Errorf("parameter %s of %q: %w", path, id, ErrNotFound)
	}
	if err := c.db.View(func(txn *badger.Txn) (err error) { r, err = getParam(txn, id, path); return err }); err != nil {
		return Parameter{}, fmt.Errorf("parameter %s of %s: %w", path, id, err)
	}
	return r.public(), nil
}

// DeviceQuery selects devices for ListDevices. Zero fields do not filter.
type DeviceQuery struct {
	IDPrefix         string
	LastInformAfter  time.Time
	LastInformBefore time.Time
	// Param, when set, keeps devices whose cached Param equals Value.
	Param, Value string
	// Cursor continues a previous listing: the ID of its last device.
	Cursor string
	// Offset skips that many matches first.
	Offset int
	Limit  int
}

// ListDevices returns up to q.Limit matching devices in ID order and the
// cursor for the next page ("" at the end). Badger's key order is the
// index: an ID prefix is a range scan, other filters read each candidate.
func (c *Cache) ListDevices(q DeviceQuery) ([]*Device, string, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	var out []*Device
	next := ""
	err := c.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.PrefetchValues = false
		o.Prefix = []byte(pDevice + q.IDPrefix)
		it := txn.NewIterator(o)
		defer it.Close()
		start := o.Prefix
		if q.Cursor != "" {
			// Seek just after the cursor.
			start = append([]byte(pDevice+q.Cursor), 0)
			if bytes.Compare(start, o.Prefix) < 0 {
				start = o.Prefix
			}
		}
		skip := q.Offset
		for it.Seek(start); it.Valid(); it.Next() {
			id := string(it.Item().Key()[len(pDevice):])
			if q.Param != "" {
				r, err := getParam(txn, id, q.Param)
				if errors.Is(err, ErrNotFound) || (err == nil && r.Value != q.Value) {
					continue
				}
				if err != nil {
					return err
				}
			}
			var d Device
			if err := it.Item().Value(func(b []byte) error { return cborDec.Unmarshal(b, &d) }); err != nil {
				return fmt.Errorf("decode device %s: %w", id, err)
			}
			if (!q.LastInformAfter.IsZero() && !d.LastInform.After(q.LastInformAfter)) ||
				(!q.LastInformBefore.IsZero() && !d.LastInform.Before(q.LastInformBefore)) {
				continue
			}
			if skip > 0 {
				skip--
				continue
			}
			if len(out) == q.Limit {
				next = out[len(out)-1].ID
				return nil
			}
			out = append(out, &d)
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("list devices: %w", err)
	}
	return out, next, nil
}

// DeleteDevice removes a device with its parameters, tasks, faults and
// credentials. Waiters on its tasks are released.
func (c *Cache) DeleteDevice(id string) error {
	if !validID(id) {
		return fmt.Errorf("delete device %q: %w", id, ErrNotFound)
	}
	var tasks []string
	err := c.update(func(txn *badger.Txn) error {
		tasks = tasks[:0]
		if _, err := txn.Get([]byte(pDevice + id)); errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		for _, p := range []string{pOpen, pDone} {
			keys, err := deletePrefix(txn, p+id+"/")
			if err != nil {
				return err
			}
			for _, k := range keys {
				tid := k[len(p)+len(id)+1:]
				tasks = append(tasks, tid)
				if err := txn.Delete([]byte(pTask + tid)); err != nil {
					return err
				}
			}
		}
		for _, p := range []string{pFault, pHistory, pAwait} {
			if _, err := deletePrefix(txn, p+id+"/"); err != nil {
				return err
			}
		}
		if err := txn.Delete([]byte(pTree + id)); err != nil {
			return err
		}
		var cr credRec
		switch err := getCBOR(txn, pCred+id, &cr); {
		case err == nil:
			if err := removeCredRef(txn, cr.Username, id); err != nil {
				return err
			}
		case !errors.Is(err, ErrNotFound):
			return err
		}
		if err := txn.Delete([]byte(pCred + id)); err != nil {
			return err
		}
		return txn.Delete([]byte(pDevice + id))
	})
	if err != nil {
		return fmt.Errorf("delete device %s: %w", id, err)
	}
	c.devices.Add(-1)
	for _, t := range tasks {
		c.notify(t)
	}
	return nil
}

// Faults lists the device's faults, oldest task first.
func (c *Cache) Faults(id string) ([]DeviceFault, error) {
	if !validID(id) {
		return nil, fmt.Errorf("faults of %q: %w", id, ErrNotFound)
	}
	var out []DeviceFault
	err := c.db.View(func(txn *badger.Txn) error {
		if _, err := txn.Get([]byte(pDevice + id)); errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		}
		o := badger.DefaultIteratorOptions
		o.Prefix = []byte(pFault + id + "/")
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var f DeviceFault
			if err := it.Item().Value(func(b []byte) error { return cborDec.Unmarshal(b, &f) }); err != nil {
				return fmt.Errorf("decode %s: %w", it.Item().Key(), err)
			}
			out = append(out, f)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("faults of %s: %w", id, err)
	}
	return out, nil
}

// maxFaultList bounds the faults AllFaults returns: a fleet in trouble
// must not turn one API call into an unbounded answer.
const maxFaultList = 100000

// AllFaults returns every device's faults, in device and fault ID order
// (at most maxFaultList: more is ErrBadRequest-wrapped, narrow by device).
func (c *Cache) AllFaults() ([]DeviceFault, error) {
	var out []DeviceFault
	err := c.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = []byte(pFault)
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if len(out) == maxFaultList {
				return fmt.Errorf("%w: more than %d faults; ask for one device's", errBadRequest, maxFaultList)
			}
			var f DeviceFault
			if err := it.Item().Value(func(b []byte) error { return cborDec.Unmarshal(b, &f) }); err != nil {
				return fmt.Errorf("decode %s: %w", it.Item().Key(), err)
			}
			out = append(out, f)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("faults: %w", err)
	}
	return out, nil
}

// ---- tasks ----

// AddTask validates and queues a task created at this edge (its local API,
// connection-request credential provisioning), assigning t.ID (a ULID, so
// the device's queue is FIFO in key order), status pending and timestamps
// when empty. The same transaction puts the task in the outbox, so the
// core learns it when it is created and later accepts its result. A task
// whose ID exists changes nothing and is ErrTaskExists: redelivery must
// never send a finished task back to pending. Tasks from the core arrive
// through StoreDownlink instead, and are not echoed back.
func (c *Cache) AddTask(t *fleet.Task) error {
	if err := t.Validate(); err != nil {
		return err
	}
	if !validID(t.Device) {
		return fmt.Errorf("add task: %w: bad device id %q", fleet.ErrBadTask, t.Device)
	}
	if t.ID == "" {
		t.ID = ulid.Make().String()
	} else if !validID(t.ID) {
		return fmt.Errorf("add task: %w: bad task id %q", fleet.ErrBadTask, t.ID)
	}
	if t.Status == "" {
		t.Status = fleet.StatusPending
	}
	if t.Timestamp.IsZero() {
		t.Timestamp = time.Now().UTC()
	}
	if t.Edge == "" {
		t.Edge = c.opts.EdgeID // created here: this edge is the one that runs it
	}
	err := c.updateOutbox(func(txn *badger.Txn, ob *outboxTxn) error {
		if err := insertTask(txn, t); err != nil {
			return err
		}
		return ob.add(t)
	})
	if err != nil {
		return fmt.Errorf("add task %s for %s: %w", t.ID, t.Device, err)
	}
	c.taskGen.Add(1)
	// The API answers "queued": the task must outlive a power loss.
	if err := c.durable(); err != nil {
		return fmt.Errorf("add task for %s: %w", t.Device, err)
	}
	c.queued(t.Device)
	return nil
}

// AddWaitedTask is AddTask for a caller that will wait for the task
// (WaitTask): the wait is registered before the task is stored, so a
// session that runs it at once still sees that someone waits for its
// result and may hold itself open for the next one (see
// SessionWork.Lingering).
func (c *Cache) AddWaitedTask(t *fleet.Task) error {
	if t.ID == "" {
		t.ID = ulid.Make().String()
	}
	if !validID(t.ID) {
		return c.AddTask(t) // refuses it
	}
	c.waiter(t.ID)
	if err := c.AddTask(t); err != nil {
		// Drop the registration: there is nothing to wait for. A task that
		// existed already gets a spurious wake-up, which WaitTask absorbs.
		c.notify(t.ID)
		return err
	}
	return nil
}

// insertTask stores a new task and its index entry, or returns
// ErrTaskExists and writes nothing when the ID is taken.
func insertTask(txn *badger.Txn, t *fleet.Task) error {
	switch _, err := txn.Get([]byte(pTask + t.ID)); {
	case err == nil:
		return ErrTaskExists
	case !errors.Is(err, badger.ErrKeyNotFound):
		return err
	}
	if err := setRecord(txn, pTask+t.ID, t); err != nil {
		return err
	}
	if t.Status.Final() {
		return txn.Set([]byte(pDone+t.Device+"/"+t.ID), nil)
	}
	return txn.Set([]byte(pOpen+t.Device+"/"+t.ID), nil)
}

// deleteTaskKeys removes a task, its index entries and its fault.
func deleteTaskKeys(txn *badger.Txn, t *fleet.Task) error {
	for _, k := range []string{pTask + t.ID, pOpen + t.Device + "/" + t.ID, pDone + t.Device + "/" + t.ID, pFault + t.Device + "/" + t.ID} {
		if err := txn.Delete([]byte(k)); err != nil {
			return err
		}
	}
	return nil
}

// Task returns a task. A task a live session is executing reads as running
// even though the store still holds it pending until the session ends.
func (c *Cache) Task(id string) (*fleet.Task, error) {
	if !validID(id) {
		return nil, fmt.Errorf("task %q: %w", id, ErrNotFound)
	}
	var t fleet.Task
	if err := c.db.View(func(txn *badger.Txn) error { return getRecord(txn, pTask+id, &t) }); err != nil {
		return nil, fmt.Errorf("task %s: %w", id, err)
	}
	c.mu.Lock()
	if c.inflight[id] && !t.Status.Final() {
		t.Status = fleet.StatusRunning
	}
	c.mu.Unlock()
	return &t, nil
}

func (c *Cache) tasksUnder(prefix string) ([]*fleet.Task, error) {
	var out []*fleet.Task
	err := c.db.View(func(txn *badger.Txn) error {
		var err error
		out, err = loadTasks(txn, prefix)
		return err
	})
	return out, err
}

func loadTasks(txn *badger.Txn, prefix string) ([]*fleet.Task, error) {
	var out []*fleet.Task
	for _, k := range keysWithPrefix(txn, prefix) {
		tid := k[strings.LastIndexByte(k, '/')+1:]
		t := new(fleet.Task)
		if err := getRecord(txn, pTask+tid, t); err != nil {
			if errors.Is(err, ErrNotFound) {
				continue // index without record: deleted concurrently
			}
			return nil, fmt.Errorf("load task %s: %w", tid, err)
		}
		out = append(out, t)
	}
	return out, nil
}

// PendingTasks returns the device's open tasks (pending, and running
// transfers awaiting TransferComplete), oldest first.
func (c *Cache) PendingTasks(deviceID string) ([]*fleet.Task, error) {
	if !validID(deviceID) {
		return nil, fmt.Errorf("tasks of %q: %w", deviceID, ErrNotFound)
	}
	ts, err := c.tasksUnder(pOpen + deviceID + "/")
	if err != nil {
		return nil, fmt.Errorf("pending tasks of %s: %w", deviceID, err)
	}
	c.overlayRunning(ts)
	return ts, nil
}

// DeviceTasks returns all the device's tasks, open and finished, oldest first.
func (c *Cache) DeviceTasks(deviceID string) ([]*fleet.Task, error) {
	if !validID(deviceID) {
		return nil, fmt.Errorf("tasks of %q: %w", deviceID, ErrNotFound)
	}
	open, err := c.tasksUnder(pOpen + deviceID + "/")
	if err != nil {
		return nil, fmt.Errorf("tasks of %s: %w", deviceID, err)
	}
	done, err := c.tasksUnder(pDone + deviceID + "/")
	if err != nil {
		return nil, fmt.Errorf("tasks of %s: %w", deviceID, err)
	}
	all := append(done, open...)
	sort.Slice(all, func(i, j int) bool { return all[i].ID < all[j].ID })
	c.overlayRunning(all)
	return all, nil
}

// ListTasks returns up to limit tasks of any device in ID (creation)
// order, starting after the task ID cursor.
func (c *Cache) ListTasks(cursor string, limit int) ([]*fleet.Task, string, error) {
	var out []*fleet.Task
	next := ""
	err := c.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = []byte(pTask)
		it := txn.NewIterator(o)
		defer it.Close()
		start := []byte(pTask)
		if cursor != "" {
			start = append([]byte(pTask+cursor), 0)
		}
		for it.Seek(start); it.Valid(); it.Next() {
			if len(out) == limit {
				next = out[len(out)-1].ID
				return nil
			}
			t := new(fleet.Task)
			if err := it.Item().Value(func(b []byte) error { return fleet.Unmarshal(b, t) }); err != nil {
				return fmt.Errorf("decode %s: %w", it.Item().Key(), err)
			}
			out = append(out, t)
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("list tasks: %w", err)
	}
	c.overlayRunning(out)
	return out, next, nil
}

func (c *Cache) overlayRunning(ts []*fleet.Task) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range ts {
		if c.inflight[t.ID] && !t.Status.Final() {
			t.Status = fleet.StatusRunning
		}
	}
}

// DeleteTask deletes a pending or finished task and its fault. A task a
// session is executing, or a transfer the CPE has accepted, is
// ErrTaskRunning.
func (c *Cache) DeleteTask(id string) error {
	if !validID(id) {
		return fmt.Errorf("delete task %q: %w", id, ErrNotFound)
	}
	c.mu.Lock()
	running := c.inflight[id]
	c.mu.Unlock()
	if running {
		return fmt.Errorf("delete task %s: %w", id, ErrTaskRunning)
	}
	err := c.update(func(txn *badger.Txn) error {
		var t fleet.Task
		if err := getRecord(txn, pTask+id, &t); err != nil {
			return err
		}
		if t.Status == fleet.StatusRunning {
			return ErrTaskRunning
		}
		return deleteTaskKeys(txn, &t)
	})
	if err != nil {
		return fmt.Errorf("delete task %s: %w", id, err)
	}
	c.notify(id)
	return nil
}

// WaitTask waits until the task is final (done, fault, expired) and
// returns it, or returns the task as it stands when ctx ends (with ctx's
// error). A deleted task is ErrNotFound.
func (c *Cache) WaitTask(ctx context.Context, id string) (*fleet.Task, error) {
	for {
		ch := c.waiter(id)
		t, err := c.Task(id)
		if err != nil {
			return nil, err
		}
		if t.Status.Final() {
			return t, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return t, fmt.Errorf("wait task %s: %w", id, ctx.Err())
		}
	}
}

func (c *Cache) waiter(id string) chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch, ok := c.waiters[id]
	if !ok {
		ch = make(chan struct{})
		c.waiters[id] = ch
	}
	return ch
}

// awaited reports whether anyone waits (WaitTask) for one of the tasks.
func (c *Cache) awaited(ids []string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		if _, ok := c.waiters[id]; ok {
			return true
		}
	}
	return false
}

// watchQueue returns a channel closed once a task is queued for the
// device after this call (AddTask, or a downlink task the core marked
// Wake). Watchers of one device share the channel; unwatchQueue drops it.
func (c *Cache) watchQueue(deviceID string) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch, ok := c.queueWatch[deviceID]
	if !ok {
		ch = make(chan struct{})
		c.queueWatch[deviceID] = ch
	}
	return ch
}

// unwatchQueue forgets the device's watch channel ch if it is still the
// current one, so the map holds only devices being watched. A watcher
// of the same device that shared ch (two sessions of one device racing)
// then misses nothing worse than its wait's end.
func (c *Cache) unwatchQueue(deviceID string, ch <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.queueWatch[deviceID]; ok && (<-chan struct{})(cur) == ch {
		delete(c.queueWatch, deviceID)
	}
}

// queued wakes the watchers of a device after a task for it committed.
func (c *Cache) queued(deviceID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch, ok := c.queueWatch[deviceID]; ok {
		close(ch)
		delete(c.queueWatch, deviceID)
	}
}

// taskFinal reports a task that just became final to OnTaskFinal.
func (c *Cache) taskFinal(t *fleet.Task) {
	if c.opts.OnTaskFinal != nil {
		c.opts.OnTaskFinal(t)
	}
}

// notify wakes the waiters of a task after its change was committed.
func (c *Cache) notify(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch, ok := c.waiters[id]; ok {
		close(ch)
		delete(c.waiters, id)
	}
}

// ---- files (metadata only; blobs live in FileStore) ----

// FileMeta returns a file's metadata, or ErrNotFound.
func (c *Cache) FileMeta(name string) (fleet.FileMeta, error) {
	var m fleet.FileMeta
	if err := c.db.View(func(txn *badger.Txn) error { return getRecord(txn, pFile+name, &m) }); err != nil {
		return fleet.FileMeta{}, fmt.Errorf("file %s: %w", name, err)
	}
	return m, nil
}

// putFileMeta stores m and returns the metadata it replaced, if any.
func (c *Cache) putFileMeta(m fleet.FileMeta) (old *fleet.FileMeta, err error) {
	err = c.update(func(txn *badger.Txn) error {
		old = nil
		var prev fleet.FileMeta
		if err := getRecord(txn, pFile+m.Name, &prev); err == nil {
			old = &prev
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		return setRecord(txn, pFile+m.Name, &m)
	})
	if err != nil {
		return nil, fmt.Errorf("store file metadata %s: %w", m.Name, err)
	}
	return old, nil
}

func (c *Cache) deleteFileMeta(name string) (fleet.FileMeta, error) {
	var m fleet.FileMeta
	err := c.update(func(txn *badger.Txn) error {
		if err := getRecord(txn, pFile+name, &m); err != nil {
			return err
		}
		return txn.Delete([]byte(pFile + name))
	})
	if err != nil {
		return fleet.FileMeta{}, fmt.Errorf("delete file metadata %s: %w", name, err)
	}
	return m, nil
}

// ListFiles returns every file's metadata in name order.
func (c *Cache) ListFiles() ([]fleet.FileMeta, error) {
	return viewRecords[fleet.FileMeta](c, pFile, "files")
}
