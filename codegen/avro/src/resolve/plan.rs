//! The compiled resolution plan: flat arenas of transcoding nodes, skip nodes and pre-encoded defaults.
//!
//! Nodes refer to each other by index, so recursive schemas compile to a finite (cyclic) plan.

/// Index of a [`Node`] in [`Plan::nodes`].
pub(crate) type NodeId = u32;
/// Index of a [`Skip`] in [`Plan::skips`].
pub(crate) type SkipId = u32;

/// A compiled plan: how to rewrite one writer datum into the reader's encoding.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Transcoding nodes (writer value in, reader value out).
    pub(crate) nodes: Vec<Node>,
    /// Skipping nodes (writer value in, nothing out).
    pub(crate) skips: Vec<Skip>,
    /// Reader defaults, already in the reader's binary encoding; [`Step::Default`] ranges index into it.
    pub(crate) defaults: Vec<u8>,
    /// The node of the top-level schema.
    pub(crate) root: NodeId,
    /// Whether some record reorders fields (so transcoding needs scratch space).
    pub(crate) reorders: bool,
}

/// Rewrites one writer value into one reader value.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    /// Writer and reader encodings are identical: skip the writer value and copy its bytes verbatim
    /// (collections inside keep the writer's blocking, which is valid Avro).
    Copy(SkipId),
    /// `int` read as `long`.
    IntToLong,
    /// `int` read as `float`.
    IntToFloat,
    /// `int` read as `double`.
    IntToDouble,
    /// `long` read as `float`.
    LongToFloat,
    /// `long` read as `double`.
    LongToDouble,
    /// `float` read as `double`.
    FloatToDouble,
    /// `bytes` read as `string`: copied after checking it is UTF-8.
    BytesToString,
    /// An enum: writer ordinal to reader ordinal.
    Enum(Box<[EnumTarget]>),
    /// An array, written out as one block of resolved items plus the end marker.
    Array(NodeId),
    /// A map, written out as one block of keys and resolved values plus the end marker.
    Map(NodeId),
    /// A writer union: one branch per writer branch.
    Union(Box<[Branch]>),
    /// A writer non-union read as a reader union: the reader branch index, then the value.
    Tag(u32, NodeId),
    /// A record: steps in writer field order that produce reader fields in reader order.
    Record(Record),
    /// Unresolvable: an error when a value of this type actually occurs.
    Fail(Box<str>),
    /// A named pair being compiled (replaced before the plan is finished).
    Pending,
}

/// Where a writer enum symbol goes.
#[derive(Debug, Clone)]
pub(crate) enum EnumTarget {
    /// The reader ordinal (same symbol, or the reader enum's default).
    Ordinal(u32),
    /// The symbol is unknown to the reader, which has no default: an error when it occurs.
    Unknown(Box<str>),
}

/// What a writer union branch becomes.
#[derive(Debug, Clone)]
pub(crate) enum Branch {
    /// Resolved: the reader union branch index to write (`None` when the reader is not a union), and the value.
    To(Option<u32>, NodeId),
    /// No reader branch fits: an error when this branch occurs.
    Fail(Box<str>),
}

/// A record plan.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    /// Executed in order; reads writer fields in writer order, emits reader fields in reader order.
    pub(crate) steps: Box<[Step]>,
}

/// One step of a record plan.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step {
    /// Transcode the next writer field straight to the output (it is the next reader field).
    Direct(NodeId),
    /// Transcode the next writer field into the next scratch slot (its reader field comes later).
    Buffer(NodeId),
    /// Skip the next writer field (the reader has no such field).
    Skip(SkipId),
    /// Emit a reader default: `defaults[start..start + len]`.
    Default {
        /// Offset in [`Plan::defaults`].
        start: u32,
        /// Length in bytes.
        len: u32,
    },
    /// Emit the scratch slot filled by this record's n-th [`Step::Buffer`].
    Flush(u32),
}

/// Skips one writer value.
#[derive(Debug, Clone)]
pub(crate) enum Skip {
    /// `null`: nothing.
    Null,
    /// `boolean`: one byte, 0 or 1.
    Boolean,
    /// `int`: a varint within 32 bits.
    Int,
    /// `long`: a varint.
    Long,
    /// `float`, `double`, `fixed`: that many bytes.
    Bytes(usize),
    /// `bytes`, `string`: a length, then that many bytes.
    Sized,
    /// An enum ordinal below the number of symbols.
    Enum(usize),
    /// An array of items.
    Array(SkipId),
    /// A map of values.
    Map(SkipId),
    /// A union: the branch index, then the branch.
    Union(Box<[SkipId]>),
    /// A record: its fields in order.
    Record(Box<[SkipId]>),
    /// A record being compiled (replaced before the plan is finished).
    Pending,
}
