package vmdk

import (
	"container/list"
	"sync"
)

// cacheKey names a grain table or a grain of one extent.
type cacheKey struct {
	ext int32
	idx int64
}

const cacheShards = 16

// lru is a sharded, size-bounded LRU cache, safe for parallel use. Sharding
// keeps parallel readers off one global lock.
type lru[V any] struct {
	shards [cacheShards]lruShard[V]
}

type lruShard[V any] struct {
	mu    sync.Mutex
	max   int64
	used  int64
	items map[cacheKey]*list.Element
	order list.List
}

type lruItem[V any] struct {
	key  cacheKey
	val  V
	cost int64
}

func newLRU[V any](budget int64) *lru[V] {
	c := &lru[V]{}
	for i := range c.shards {
		c.shards[i].max = max(budget/cacheShards, 1)
		c.shards[i].items = map[cacheKey]*list.Element{}
	}
	return c
}

func (c *lru[V]) shard(k cacheKey) *lruShard[V] {
	h := uint64(k.idx)*0x9e3779b97f4a7c15 ^ uint64(k.ext)*0xbf58476d1ce4e5b9
	return &c.shards[(h>>32)%cacheShards]
}

func (c *lru[V]) get(k cacheKey) (V, bool) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.items[k]; ok {
		s.order.MoveToFront(el)
		return el.Value.(*lruItem[V]).val, true
	}
	var zero V
	return zero, false
}

func (c *lru[V]) put(k cacheKey, v V, cost int64) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.items[k]; ok {
		s.order.MoveToFront(el)
		return
	}
	s.items[k] = s.order.PushFront(&lruItem[V]{key: k, val: v, cost: cost})
	s.used += cost
	for s.used > s.max && s.order.Len() > 1 {
		el := s.order.Back()
		it := el.Value.(*lruItem[V])
		s.order.Remove(el)
		delete(s.items, it.key)
		s.used -= it.cost
	}
}
