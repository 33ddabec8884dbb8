package dev.panatron.graph;

/**
 * A graph that cannot be processed as asked: a shape that does not fit an op, an op or dtype
 * without an implementation, a value without a producer. The message names the node and op.
 */
public class GraphException extends IllegalArgumentException {
    public GraphException(String message) { super(message); }

    public GraphException(Node node, String message) { super(node.describe() + ": " + message); }

    public GraphException(String message, Throwable cause) { super(message, cause); }
}
