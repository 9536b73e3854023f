// Verdicts of Avro Java's SchemaCompatibility (the checker Confluent's Schema Registry uses) for schema pairs,
// for ursa-compat's differential test.
//
// Input on stdin: JSON lines {"reader": "<schema json>", "writer": "<schema json>"}.
// Output on stdout, one line per input line, in order:
//   "compatible", "incompatible KIND,KIND" (sorted distinct SchemaIncompatibilityType names),
//   or "error <message>" when a schema does not parse or the checker throws.
//
// Schemas are parsed with `new Schema.Parser()`, which validates field defaults. With the argument
// `--no-validate-defaults` they are parsed with `setValidateDefaults(false)`, as Confluent's Schema Registry
// parses them (AvroSchema, unless `schema.providers.avro.validate.defaults=true`).
package dev.ursa.peers;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.nio.charset.StandardCharsets;
import java.util.TreeSet;
import org.apache.avro.Schema;
import org.apache.avro.SchemaCompatibility;

public final class AvroCompat {
  private AvroCompat() {}

  static String verdict(String readerJson, String writerJson, boolean validateDefaults) {
    Schema reader;
    Schema writer;
    try {
      reader = new Schema.Parser().setValidateDefaults(validateDefaults).parse(readerJson);
      writer = new Schema.Parser().setValidateDefaults(validateDefaults).parse(writerJson);
    } catch (RuntimeException e) {
      return "error parse: " + oneLine(e);
    }
    try {
      SchemaCompatibility.SchemaPairCompatibility result =
          SchemaCompatibility.checkReaderWriterCompatibility(reader, writer);
      if (result.getType() == SchemaCompatibility.SchemaCompatibilityType.COMPATIBLE) {
        return "compatible";
      }
      TreeSet<String> kinds = new TreeSet<>();
      for (SchemaCompatibility.Incompatibility i : result.getResult().getIncompatibilities()) {
        kinds.add(i.getType().name());
      }
      return "incompatible " + String.join(",", kinds);
    } catch (RuntimeException e) {
      return "error check: " + e.getClass().getSimpleName() + ": " + oneLine(e);
    }
  }

  static String oneLine(Throwable e) {
    String m = String.valueOf(e.getMessage());
    return String.join(" ", m.trim().split("\\s+"));
  }

  public static void main(String[] args) throws Exception {
    boolean validateDefaults = true;
    for (String arg : args) {
      if (arg.equals("--no-validate-defaults")) {
        validateDefaults = false;
      } else {
        System.err.println("usage: AvroCompat [--no-validate-defaults] < pairs.jsonl");
        System.exit(2);
      }
    }
    ObjectMapper json = new ObjectMapper();
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    BufferedWriter out = new BufferedWriter(new OutputStreamWriter(System.out, StandardCharsets.UTF_8));
    String line;
    while ((line = in.readLine()) != null) {
      if (line.isBlank()) {
        continue;
      }
      JsonNode pair = json.readTree(line);
      out.write(verdict(pair.get("reader").asText(), pair.get("writer").asText(), validateDefaults));
      out.write('\n');
    }
    out.flush();
  }
}
