package dev.panatron.tokenize;

import java.util.Map;

/**
 * A character trie over the WordPiece vocabulary for greedy longest-prefix matching without
 * allocating substrings. Edges live in one open-addressing hash table keyed by (node, UTF-16 char).
 * Immutable after construction, safe to share between threads.
 */
final class VocabTrie {
    private final long[] keys;    // (node << 16 | char) + 1; 0 = empty slot
    private final int[] children;
    private final int mask;
    private final int[] tokenId;  // per node: the vocabulary id ending here, or -1
    private final int[] asciiRoot; // children of the root for chars < 128 (hot path), -1 = none

    VocabTrie(Map<String, Integer> vocab) {
        long totalChars = 0;
        for (String k : vocab.keySet()) totalChars += k.length();
        int maxNodes = (int) Math.min(Integer.MAX_VALUE - 8, totalChars + 1);
        int cap = Integer.highestOneBit(Math.max(16, (int) Math.min(1 << 30, totalChars * 2))) << 1;
        long[] ks = new long[cap];
        int[] ch = new int[cap];
        int[] ids = new int[Math.max(1, Math.min(maxNodes, 1 << 20))];
        java.util.Arrays.fill(ids, -1);
        int nodes = 1;
        int m = cap - 1;
        for (Map.Entry<String, Integer> e : vocab.entrySet()) {
            String s = e.getKey();
            int node = 0;
            for (int i = 0; i < s.length(); i++) {
                long key = ((long) node << 16 | s.charAt(i)) + 1;
                int h = hash(key) & m;
                while (ks[h] != 0 && ks[h] != key) h = (h + 1) & m;
                if (ks[h] == 0) {
                    ks[h] = key;
                    ch[h] = nodes;
                    if (nodes >= ids.length) {
                        int[] bigger = java.util.Arrays.copyOf(ids, ids.length * 2);
                        java.util.Arrays.fill(bigger, ids.length, bigger.length, -1);
                        ids = bigger;
                    }
                    nodes++;
                }
                node = ch[h];
            }
            ids[node] = e.getValue();
        }
        this.keys = ks;
        this.children = ch;
        this.mask = m;
        this.tokenId = java.util.Arrays.copyOf(ids, nodes);
        this.asciiRoot = new int[128];
        for (int c = 0; c < 128; c++) asciiRoot[c] = lookup(0, (char) c);
    }

    private static int hash(long key) {
        long h = key * 0x9E3779B97F4A7C15L;
        return (int) (h ^ (h >>> 29));
    }

    private int lookup(int node, char c) {
        long key = ((long) node << 16 | c) + 1;
        int h = hash(key) & mask;
        while (true) {
            long k = keys[h];
            if (k == key) return children[h];
            if (k == 0) return -1;
            h = (h + 1) & mask;
        }
    }

    /** The node reached from the root by {@code prefix}, or -1. */
    int walk(String prefix) {
        int node = 0;
        for (int i = 0; i < prefix.length() && node >= 0; i++) node = lookup(node, prefix.charAt(i));
        return node;
    }

    /**
     * The longest vocabulary entry that, appended to the path of {@code startNode}, matches
     * {@code buf[from, to)} from {@code from}: returns {@code (end << 32) | id}, or -1 if none.
     */
    long longestMatch(int startNode, char[] buf, int from, int to) {
        int node = startNode;
        long best = -1;
        for (int i = from; i < to; i++) {
            char c = buf[i];
            node = (node == 0 && c < 128) ? asciiRoot[c] : lookup(node, c);
            if (node < 0) break;
            int id = tokenId[node];
            if (id >= 0) best = ((long) (i + 1) << 32) | id;
        }
        return best;
    }
}
