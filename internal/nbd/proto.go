package nbd

// Numbers of the NBD protocol (the fixed newstyle handshake, structured
// replies and the base:allocation metadata context), as the protocol
// document of the NBD project defines them. All integers on the wire are
// big-endian.
const (
	magicInit       = 0x4e42444d41474943 // "NBDMAGIC"
	magicOpt        = 0x49484156454f5054 // "IHAVEOPT"
	magicOptReply   = 0x3e889045565a9
	magicRequest    = 0x25609513
	magicSimple     = 0x67446698
	magicStructured = 0x668e33ef

	// Handshake flags (server) and client flags.
	flagFixedNewstyle = 1 << 0
	flagNoZeroes      = 1 << 1

	// Options.
	optExportName     = 1
	optAbort          = 2
	optList           = 3
	optStartTLS       = 5
	optInfo           = 6
	optGo             = 7
	optStructured     = 8
	optListMetaCtx    = 9
	optSetMetaCtx     = 10
	optExtendedHeader = 11

	// Option replies.
	repAck         = 1
	repServer      = 2
	repInfo        = 3
	repMetaContext = 4
	repErrUnsup    = 1<<31 + 1
	repErrPolicy   = 1<<31 + 2
	repErrInvalid  = 1<<31 + 3
	repErrTLSReqd  = 1<<31 + 5
	repErrUnknown  = 1<<31 + 6
	repErrTooBig   = 1<<31 + 9

	// NBD_REP_INFO types.
	infoExport    = 0
	infoName      = 1
	infoBlockSize = 3

	// Transmission flags.
	tflagHasFlags     = 1 << 0
	tflagReadOnly     = 1 << 1
	tflagSendFlush    = 1 << 2
	tflagSendFUA      = 1 << 3
	tflagSendTrim     = 1 << 5
	tflagSendZeroes   = 1 << 6
	tflagSendDF       = 1 << 7
	tflagCanMultiConn = 1 << 8

	// Commands.
	cmdRead        = 0
	cmdWrite       = 1
	cmdDisc        = 2
	cmdFlush       = 3
	cmdTrim        = 4
	cmdCache       = 5
	cmdWriteZeroes = 6
	cmdBlockStatus = 7

	// Command flags.
	cmdFlagFUA    = 1 << 0
	cmdFlagNoHole = 1 << 1
	cmdFlagDF     = 1 << 2
	cmdFlagReqOne = 1 << 3

	// Structured reply flags and chunk types.
	replyFlagDone    = 1 << 0
	chunkNone        = 0
	chunkOffsetData  = 1
	chunkOffsetHole  = 2
	chunkBlockStatus = 5
	chunkError       = 1<<15 + 1

	// Errors.
	errPerm     = 1
	errIO       = 5
	errInval    = 22
	errNoSpc    = 28
	errOverflow = 75
	errNotSup   = 95

	// base:allocation states.
	stateHole = 1 << 0
	stateZero = 1 << 1
)

// metaBaseAllocation is the one metadata context served, with its id.
const (
	metaBaseAllocation   = "base:allocation"
	metaBaseAllocationID = 1
)

// Limits. A string of the protocol is at most 4096 bytes; an option's
// data is bounded so that a client cannot make the server hold much.
const (
	maxString     = 4096
	maxOptionData = 64 << 10
	// MaxRequest bounds a read (and a write's payload, which is read and
	// refused): 32 MiB, as qemu-nbd.
	MaxRequest = 32 << 20
)
