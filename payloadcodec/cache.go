package payloadcodec

import (
	"container/list"
	"crypto/cipher"
	"sync"
)

// keyCache keeps the most recently used unwrapped data keys (as ciphers), by Transit key
// and wrapped key. Keys are never written anywhere else.
type keyCache struct {
	mu    sync.Mutex
	max   int
	order *list.List // front: most recently used
	byID  map[string]*list.Element
}

type cacheEntry struct {
	id   string
	aead cipher.AEAD
}

func newKeyCache(max int) *keyCache {
	return &keyCache{max: max, order: list.New(), byID: map[string]*list.Element{}}
}

func (c *keyCache) get(id string) (cipher.AEAD, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byID[id]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*cacheEntry).aead, true
}

func (c *keyCache) put(id string, a cipher.AEAD) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byID[id]; ok {
		e.Value.(*cacheEntry).aead = a
		c.order.MoveToFront(e)
		return
	}
	c.byID[id] = c.order.PushFront(&cacheEntry{id: id, aead: a})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.byID, last.Value.(*cacheEntry).id)
	}
}

func (c *keyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
