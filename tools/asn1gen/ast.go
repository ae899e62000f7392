package main

// kind is the ASN.1 type class the generator distinguishes.
type kind int

const (
	kRef kind = iota
	kSeq
	kChoice
	kSeqOf
	kInt
	kBool
	kNull
	kEnum
	kBitStr
	kOctStr
	kOID
	kStr // known-multiplier 8-bit string: IA5, Printable, Numeric, Visible
	kBMP
	kGeneral // GeneralString and other non-known-multiplier strings: octets
	kOpen    // open type (TYPE-IDENTIFIER.&Type)
)

// typ is a parsed type with its PER-visible constraints.
type typ struct {
	kind   kind
	fields []*field // kSeq, kChoice: in textual order
	ext    bool     // extension marker present (kSeq, kChoice, kEnum)
	elem   *typ     // kSeqOf
	ref    string   // kRef
	args   []*typ   // kRef: actual parameters
	items  []string // kEnum root items, sorted by value
	nExtEn int      // kEnum: extension items

	hasLB, hasUB bool
	lb, ub       int64
	valExt       bool

	hasSize        bool
	sizeLB, sizeUB int // sizeUB -1: unbounded
	sizeExt        bool

	strKind string // kStr: IA5, Printable, Numeric, Visible
	from    string

	goName string // set for named (assigned or hoisted) constructed types
	module string // module that wrote this type, for reference lookup
}

type field struct {
	name     string
	t        *typ
	optional bool // OPTIONAL or DEFAULT
	ext      bool // extension addition
}

type assignment struct {
	name   string
	params []string
	t      *typ
	module *module
}

type module struct {
	name    string
	assigns []*assignment
	imports map[string]string // type name -> module name
}
