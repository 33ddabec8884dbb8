package dev.panatron.tokenize;

import java.util.Arrays;
import java.util.Map;

/**
 * A character trie over the WordPiece vocabulary for greedy longest-prefix matching without
 * allocating substrings. Compact and cache-friendly: nodes are numbered breadth-first and the
 * children of a node are contiguous, sorted by char ({@code edgeChar}/{@code edgeTarget} in
 * {@code [childStart[n], childStart[n + 1])}); the root's ASCII children have a direct table.
 * Immutable after construction, safe to share between threads.
 */
final class VocabTrie {
    private final int[] childStart; // per node, + 1 sentinel
    private final char[] edgeChar;
    private final int[] edgeTarget;
    private final int[] tokenId;    // per node: the vocabulary id ending here, or -1
    private final int[] asciiRoot;  // the root's children for chars < 128, -1 = none

    VocabTrie(Map<String, Integer> vocab) {
        String[] keys = vocab.keySet().toArray(new String[0]);
        Arrays.sort(keys); // String order is UTF-16 char order: siblings arrive sorted
        long total = 1;
        for (String k : keys) total += k.length();
        int cap = (int) Math.min(Integer.MAX_VALUE - 8, total);
        // 1. a linked trie: first/last child and next sibling per node
        int[] first = new int[cap], last = new int[cap], next = new int[cap], id = new int[cap];
        char[] ch = new char[cap];
        Arrays.fill(first, -1);
        Arrays.fill(last, -1);
        Arrays.fill(next, -1);
        Arrays.fill(id, -1);
        int nodes = 1;
        for (String k : keys) {
            int node = 0;
            for (int i = 0; i < k.length(); i++) {
                char c = k.charAt(i);
                int child = last[node];
                if (child < 0 || ch[child] != c) { // sorted input: an existing child with c is the last one
                    child = nodes++;
                    ch[child] = c;
                    if (last[node] < 0) first[node] = child; else next[last[node]] = child;
                    last[node] = child;
                }
                node = child;
            }
            id[node] = vocab.get(k);
        }
        // 2. breadth-first renumbering, children contiguous
        int[] order = new int[nodes], newId = new int[nodes];
        int head = 0, tail = 0;
        order[tail++] = 0;
        newId[0] = 0;
        childStart = new int[nodes + 1];
        edgeChar = new char[nodes - 1];
        edgeTarget = new int[nodes - 1];
        tokenId = new int[nodes];
        int edges = 0;
        while (head < tail) {
            int old = order[head];
            int n = head++;
            tokenId[n] = id[old];
            childStart[n] = edges;
            for (int c = first[old]; c >= 0; c = next[c]) {
                newId[c] = tail;
                order[tail++] = c;
                edgeChar[edges] = ch[c];
                edgeTarget[edges] = newId[c];
                edges++;
            }
        }
        childStart[nodes] = edges;
        asciiRoot = new int[128];
        for (int c = 0; c < 128; c++) asciiRoot[c] = child(0, (char) c);
    }

    private int child(int node, char c) {
        int lo = childStart[node], hi = childStart[node + 1] - 1;
        if (hi - lo < 8) {
            for (int e = lo; e <= hi; e++) {
                char x = edgeChar[e];
                if (x == c) return edgeTarget[e];
                if (x > c) return -1;
            }
            return -1;
        }
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            char x = edgeChar[mid];
            if (x < c) lo = mid + 1;
            else if (x > c) hi = mid - 1;
            else return edgeTarget[mid];
        }
        return -1;
    }

    /** The node reached from the root by {@code prefix}, or -1. */
    int walk(String prefix) {
        int node = 0;
        for (int i = 0; i < prefix.length() && node >= 0; i++) node = child(node, prefix.charAt(i));
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
            node = (node == 0 && c < 128) ? asciiRoot[c] : child(node, c);
            if (node < 0) break;
            int id = tokenId[node];
            if (id >= 0) best = ((long) (i + 1) << 32) | id;
        }
        return best;
    }
}
