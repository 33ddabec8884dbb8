package dev.panatron.tokenize;

import java.util.Arrays;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * HF tokenizers' BPE model on one pre-tokenized word: the word's characters become symbols (a
 * vocabulary id each; with byte_fallback, {@code <0xXX>} tokens for characters the vocabulary lacks;
 * else the unk token, fused if fuse_unk), then the adjacent pair with the lowest merge rank is merged
 * (ties: leftmost) until no pair has a merge: a binary heap of (rank, position) over a linked list of
 * symbols, stale entries skipped as HF's {@code Word::merge_all} does. With ignore_merges a word that
 * is itself in the vocabulary is one token. Results are cached per word (bounded).
 *
 * <p>Byte-level models take the word as UTF-8 bytes (each byte's symbol is the vocabulary id of its
 * byte-level character); the others take it as characters. Token spans are in UTF-8 bytes of the word.
 */
final class BpeModel {

    /**
     * A tokenized word: ids and, per token, its [start, end) in UTF-8 bytes of the word, counted as HF
     * counts them: each symbol's length added to the previous symbol's end (so a character dropped for
     * want of an unk token shifts the offsets after it, as in HF).
     */
    record Word(int[] ids, int[] spans) {}

    /** HF's cache: 10,000 words, each shorter than 256 units. */
    static final int CACHE_CAPACITY = 10_000;
    static final int CACHE_MAX_LENGTH = 256;

    final Map<String, Integer> vocab;
    private final MergeMap merges;
    private final int unkId;           // -1: none
    private final boolean fuseUnk;
    private final boolean byteFallback;
    private final boolean ignoreMerges;
    private final String prefix;       // continuing_subword_prefix, null if none
    private final String suffix;       // end_of_word_suffix, null if none
    private final boolean byteLevel;
    private final int[] byteIds;       // byte-level: the id of each byte's character (-1: not in the vocabulary)
    private final int[] fallbackIds;   // byte_fallback: the id of "<0xXX>" (-1: missing)
    private final ConcurrentHashMap<String, Word> cache = new ConcurrentHashMap<>(1024);

    BpeModel(Map<String, Integer> vocab, MergeMap merges, int unkId, boolean fuseUnk, boolean byteFallback,
             boolean ignoreMerges, String prefix, String suffix, boolean byteLevel) {
        this.vocab = vocab;
        this.merges = merges;
        this.unkId = unkId;
        this.fuseUnk = fuseUnk;
        this.byteFallback = byteFallback;
        this.ignoreMerges = ignoreMerges;
        this.prefix = prefix == null || prefix.isEmpty() ? null : prefix;
        this.suffix = suffix == null || suffix.isEmpty() ? null : suffix;
        this.byteLevel = byteLevel;
        this.byteIds = new int[256];
        this.fallbackIds = new int[256];
        for (int b = 0; b < 256; b++) {
            Integer id = vocab.get(String.valueOf(ByteLevel.BYTE_TO_CHAR[b]));
            byteIds[b] = id == null ? -1 : id;
            Integer f = vocab.get(String.format("<0x%02X>", b));
            fallbackIds[b] = f == null ? -1 : f;
        }
    }

    boolean byteLevel() { return byteLevel; }

    /**
     * Tokenizes one word: {@code bytes[from, to)} for a byte-level model (the key is the word's text,
     * for the cache), else the characters of {@code key}.
     */
    Word tokenize(String key, byte[] bytes, int from, int to) {
        Word w = cache.get(key);
        if (w != null) return w;
        return tokenizeUncached(key, bytes, from, to);
    }

    /** The cached result for a word, or null. */
    Word cached(String key) { return cache.get(key); }

    /** {@link #tokenize} for a word {@link #cached} did not have. */
    Word tokenizeUncached(String key, byte[] bytes, int from, int to) {
        Word w;
        int units = byteLevel ? to - from : key.length() * 3;
        w = ignoreMerges ? whole(key, bytes, from, to) : null;
        if (w == null) w = byteLevel ? mergeBytes(bytes, from, to) : mergeChars(key);
        if (units < CACHE_MAX_LENGTH) {
            if (cache.size() >= CACHE_CAPACITY) cache.clear();
            cache.put(key, w);
        }
        return w;
    }

    /** ignore_merges: the word as one token if the vocabulary has it. */
    private Word whole(String key, byte[] bytes, int from, int to) {
        String s = byteLevel ? ByteLevel.map(bytes, from, to) : key;
        Integer id = vocab.get(s);
        if (id == null) return null;
        return new Word(new int[] {id}, new int[] {0, byteLevel ? to - from : utf8Length(key)});
    }

    // ------------------------------------------------------------------ initial symbols

    /** Symbols under construction: id and [start, end) per symbol. */
    private static final class Symbols {
        int[] id;
        int[] start;
        int[] end;
        int n;

        Symbols(int capacity) {
            id = new int[Math.max(4, capacity)];
            start = new int[id.length];
            end = new int[id.length];
        }

        /** HF's Word::add: the symbol starts where the previous one ends. */
        void add(int i, int len) {
            int s = n == 0 ? 0 : end[n - 1];
            if (n == id.length) {
                id = Arrays.copyOf(id, n * 2);
                start = Arrays.copyOf(start, n * 2);
                end = Arrays.copyOf(end, n * 2);
            }
            id[n] = i;
            start[n] = s;
            end[n] = s + len;
            n++;
        }
    }

    private Word mergeBytes(byte[] bytes, int from, int to) {
        int n = to - from;
        Symbols sy = new Symbols(n);
        boolean direct = prefix == null && suffix == null;
        if (direct) {
            for (int i = 0; i < n; i++) {
                int id = byteIds[bytes[from + i] & 0xFF];
                if (id < 0) { direct = false; break; }
                sy.add(id, 1);
            }
        }
        if (!direct) { // the general rules on the byte-level characters
            sy.n = 0;
            String mapped = ByteLevel.map(bytes, from, to);
            initialSymbols(mapped, sy, true);
        }
        return mergeAll(sy);
    }

    private Word mergeChars(String word) {
        Symbols sy = new Symbols(word.length());
        initialSymbols(word, sy, false);
        return mergeAll(sy);
    }

    /**
     * HF's BPE::merge_word before merge_all: one symbol per character, with prefix/suffix, byte
     * fallback, unk. Lengths are UTF-8 bytes of the character ({@code unitsPerChar}: 1 for a
     * byte-level word, whose characters each stand for one byte of the input).
     */
    private void initialSymbols(String w, Symbols sy, boolean oneUnitPerChar) {
        int unkLen = -1;
        int n = w.length();
        for (int i = 0; i < n; ) {
            int cp = w.codePointAt(i);
            int e = i + Character.charCount(cp);
            int len = oneUnitPerChar ? 1 : cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
            String s = w.substring(i, e);
            if (i > 0 && prefix != null) s = prefix + s;
            if (e == n && suffix != null) s = s + suffix;
            Integer id = vocab.get(s);
            if (id != null) {
                if (unkLen >= 0) {
                    sy.add(unkId, unkLen);
                    unkLen = -1;
                }
                sy.add(id, len);
            } else {
                boolean done = false;
                if (byteFallback) {
                    byte[] b = s.getBytes(java.nio.charset.StandardCharsets.UTF_8);
                    boolean all = true;
                    for (byte x : b) if (fallbackIds[x & 0xFF] < 0) { all = false; break; }
                    if (all) { // (as HF: a pending unk is not flushed first; each byte token has length 1)
                        for (byte x : b) sy.add(fallbackIds[x & 0xFF], 1);
                        done = true;
                    }
                }
                if (!done && unkId >= 0) {
                    if (unkLen >= 0 && fuseUnk) {
                        unkLen += len;
                    } else {
                        if (unkLen >= 0) sy.add(unkId, unkLen);
                        unkLen = len;
                    }
                }
                // no unk token: HF drops the character
            }
            i = e;
        }
        if (unkLen >= 0) sy.add(unkId, unkLen);
    }

    static int utf8Length(String s) {
        int n = 0;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c < 0x80) n++;
            else if (c < 0x800) n += 2;
            else if (Character.isHighSurrogate(c) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) { n += 4; i++; }
            else n += 3;
        }
        return n;
    }

    // ------------------------------------------------------------------ merging

    /** Word::merge_all: a min-heap of (rank, position) entries over a doubly linked list of symbols. */
    private Word mergeAll(Symbols sy) {
        int n = sy.n;
        int[] id = sy.id, start = sy.start, end = sy.end;
        if (n > 1) {
            int[] prev = new int[n], next = new int[n];
            boolean[] gone = new boolean[n];
            for (int i = 0; i < n; i++) {
                prev[i] = i - 1;
                next[i] = i + 1 < n ? i + 1 : -1;
            }
            Heap heap = new Heap(n);
            for (int i = 0; i + 1 < n; i++) {
                long m = merges.get(id[i], id[i + 1]);
                if (m >= 0) heap.push(m >>> 32, i, (int) m);
            }
            while (heap.size > 0) {
                long key = heap.keys[0];
                int newId = heap.vals[0];
                heap.pop();
                int pos = (int) key;
                if (gone[pos]) continue;
                int nx = next[pos];
                if (nx < 0) continue;
                long cur = merges.get(id[pos], id[nx]);
                if (cur < 0 || (int) cur != newId) continue; // a stale entry
                id[pos] = newId;
                end[pos] = end[nx];
                gone[nx] = true;
                int nn = next[nx];
                next[pos] = nn;
                if (nn >= 0) prev[nn] = pos;
                int pv = prev[pos];
                if (pv >= 0) {
                    long m = merges.get(id[pv], id[pos]);
                    if (m >= 0) heap.push(m >>> 32, pv, (int) m);
                }
                if (nn >= 0) {
                    long m = merges.get(id[pos], id[nn]);
                    if (m >= 0) heap.push(m >>> 32, pos, (int) m);
                }
            }
            int k = 0;
            for (int i = 0; i < n; i++) {
                if (gone[i]) continue;
                id[k] = id[i];
                start[k] = start[i];
                end[k] = end[i];
                k++;
            }
            n = k;
        }
        int[] ids = Arrays.copyOf(id, n);
        int[] spans = new int[2 * n];
        for (int i = 0; i < n; i++) {
            spans[2 * i] = start[i];
            spans[2 * i + 1] = end[i];
        }
        return new Word(ids, spans);
    }

    /** A binary min-heap of (rank, position) keys with the merge's new id alongside. */
    private static final class Heap {
        long[] keys;
        int[] vals;
        int size;

        Heap(int capacity) {
            keys = new long[Math.max(4, capacity)];
            vals = new int[keys.length];
        }

        void push(long rank, int pos, int val) {
            if (size == keys.length) {
                keys = Arrays.copyOf(keys, size * 2);
                vals = Arrays.copyOf(vals, size * 2);
            }
            long k = (rank << 32) | pos;
            int i = size++;
            while (i > 0) {
                int p = (i - 1) >>> 1;
                if (keys[p] <= k) break;
                keys[i] = keys[p];
                vals[i] = vals[p];
                i = p;
            }
            keys[i] = k;
            vals[i] = val;
        }

        void pop() {
            int last = --size;
            if (last == 0) return;
            long k = keys[last];
            int v = vals[last];
            int i = 0;
            while (true) {
                int c = 2 * i + 1;
                if (c >= last) break;
                if (c + 1 < last && keys[c + 1] < keys[c]) c++;
                if (keys[c] >= k) break;
                keys[i] = keys[c];
                vals[i] = vals[c];
                i = c;
            }
            keys[i] = k;
            vals[i] = v;
        }
    }

    /** Merges as an open-addressing map from the pair (left id, right id) to (rank, new id). */
    static final class MergeMap {
        private final long[] keys;
        private final long[] vals;
        private final int mask;
        private int size;

        MergeMap(int expected) {
            int cap = Integer.highestOneBit(Math.max(16, expected * 2 - 1)) << 1;
            keys = new long[cap];
            vals = new long[cap];
            Arrays.fill(keys, -1L);
            mask = cap - 1;
        }

        private static long key(int a, int b) { return ((long) a << 32) | (b & 0xFFFFFFFFL); }

        private static int slot(long k, int mask) {
            long h = k * 0x9E3779B97F4A7C15L;
            return (int) (h >>> 40) & mask;
        }

        /** Adds or replaces (HF: a repeated pair keeps its last rank). */
        void put(int a, int b, int rank, int newId) {
            long k = key(a, b);
            int i = slot(k, mask);
            while (keys[i] != -1L && keys[i] != k) i = (i + 1) & mask;
            if (keys[i] == -1L) size++;
            keys[i] = k;
            vals[i] = ((long) rank << 32) | (newId & 0xFFFFFFFFL);
        }

        /** (rank << 32 | new id) for the pair, or -1. */
        long get(int a, int b) {
            long k = key(a, b);
            int i = slot(k, mask);
            while (true) {
                long x = keys[i];
                if (x == k) return vals[i];
                if (x == -1L) return -1L;
                i = (i + 1) & mask;
            }
        }

        int size() { return size; }
    }
}
