/** Panatron: compressed transformer inference over native kernels (FFM). */
module dev.panatron {
    requires dev.panatron.bindings;
    requires com.fasterxml.jackson.databind;
    requires info.picocli;
    requires java.net.http;
    requires com.google.protobuf;
    requires jdk.management; // bench generate: process CPU time
    exports dev.panatron;
    exports dev.panatron.tokenize;
    exports dev.panatron.models;
    exports dev.panatron.graph;
    exports dev.panatron.io;
    exports dev.panatron.lm;
    exports dev.panatron.cuda;
    // generated ONNX protobuf classes: internal, open to protobuf's reflection (toString, descriptors)
    opens dev.panatron.io.onnx to com.google.protobuf;
    opens dev.panatron.cli to info.picocli;
}
