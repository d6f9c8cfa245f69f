//! The tailcfg wire types: owned serde mirrors of Go's `tailcfg` JSON, with Go's exact field
//! names, `omitempty` rules and the nil-vs-empty distinctions that change meaning.
