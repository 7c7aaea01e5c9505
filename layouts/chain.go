package layouts

// Layer is one file of a disk's chain: a delta, a backing file, a parent.
type Layer struct {
	File   string `json:"file"`
	Format string `json:"format"`
}

// Chained is a disk that can name its files: its own, then its parents',
// newest first. Every format's Disk is one, and so is a Stack.
type Chained interface {
	Chain() []Layer
}

// Chain is d's backing chain, newest layer first; nil when d does not
// say. A disk without parents is a chain of one.
func Chain(d Disk) []Layer {
	if c, ok := d.(Chained); ok {
		return c.Chain()
	}
	return nil
}

// Chain is the top's layers, then the parent's.
func (s *stacked) Chain() []Layer {
	return append(Chain(s.top), Chain(s.parent)...)
}
