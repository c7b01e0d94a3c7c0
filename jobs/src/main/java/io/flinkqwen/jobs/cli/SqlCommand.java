/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.jobs.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.flinkqwen.operators.sql.QwenGenerateAsync;
import io.flinkqwen.operators.sql.QwenSummarizeAsync;
import io.flinkqwen.operators.sql.QwenTranslateAsync;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.CoreOptions;
import org.apache.flink.configuration.JobManagerOptions;
import org.apache.flink.configuration.PipelineOptions;
import org.apache.flink.configuration.RestOptions;
import org.apache.flink.configuration.TaskManagerOptions;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.ResultKind;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.table.api.TableResult;
import org.apache.flink.types.Row;
import org.apache.flink.types.RowKind;
import org.apache.flink.util.CloseableIterator;

/**
 * {@code sql}: runs the statements of a SQL file, in order, on an embedded MiniCluster
 * TableEnvironment (streaming mode) with {@code QWEN_GENERATE}, {@code QWEN_SUMMARIZE} and
 * {@code QWEN_TRANSLATE} registered (the async classes) and {@code --model} as their model.
 * Query results are printed as one JSON object per row on stdout.
 */
final class SqlCommand implements Main.Command {

    /** The variable the resolved model's path fills (for {@code CREATE MODEL ... 'model' = '${model}'}). */
    static final String MODEL_VARIABLE = "model";

    /** The variable the model's name fills: the hub id, the file's name, or {@code random-weights-...-shape}. */
    static final String MODEL_NAME_VARIABLE = "model_name";

    private static final Pattern VARIABLE_NAME = Pattern.compile("[A-Za-z_][A-Za-z0-9_]*");

    /** {@code SET 'key' = 'value'}, as the SQL client takes it ({@code ''} is a quote inside). */
    private static final Pattern SET = Pattern.compile(
            "(?is)SET\\s+'((?:[^']|'')+)'\\s*=\\s*'((?:[^']|'')*)'");

    /** {@code RESET 'key'}. */
    private static final Pattern RESET = Pattern.compile("(?is)RESET\\s+'((?:[^']|'')+)'");

    private final Map<String, String> env;
    private final ModelArgs.RandomWeights fallback;

    SqlCommand(Map<String, String> env) {
        this(env, ModelArgs.RandomWeights.qwen2_0_5b(env));
    }

    /** @param fallback the random-weight model that replaces the default one offline; null: none */
    SqlCommand(Map<String, String> env, ModelArgs.RandomWeights fallback) {
        this.env = env;
        this.fallback = fallback;
    }

    @Override
    public String usage() {
        return String.join("\n",
                "usage: flink-qwen sql --file FILE.sql [--model PATH|HF_ID] [--var NAME=VALUE ...] [--max-new-tokens N]",
                "         [--parallelism N]",
                "",
                "Runs the file's statements (separated by ';') in order on an embedded MiniCluster, streaming mode,",
                "with QWEN_GENERATE(prompt [, max_tokens]), QWEN_SUMMARIZE(text) and QWEN_TRANSLATE(text, lang)",
                "registered. Each query's rows are printed as one JSON object per row on stdout (column name:",
                "value); INSERT statements run to their end; SET 'key' = 'value' (and RESET 'key') sets an option",
                "for the statements after it, as in the SQL client. A failing statement stops the script with one",
                "line naming its number, exit code 1.",
                "",
                "  --model            the functions' model (qwen.model.path), also the script's ${model} (e.g.",
                "                     CREATE MODEL ... 'model' = '${model}'); default " + ModelArgs.DEFAULT_MODEL + ",",
                "                     random weights of its shape where it cannot be downloaded (as summarize);",
                "                     ${model_name} is its name (the hub id, the file's name, or random-weights-...)",
                "  --var NAME=VALUE   fills ${NAME} in the script (repeatable); ${NAME:-DEFAULT} has a default,",
                "                     $${ is a literal ${. Values are text for string literals: a ' is doubled.",
                "                     A ${NAME} with no value and no default is an error before anything runs",
                "  --max-new-tokens   the functions' default (qwen.max-new-tokens, 128)",
                "  --parallelism      default parallelism of the queries (default 1)",
                "A script's own SET 'pipeline.global-job-parameters' = '...' replaces these job parameters.");
    }

    @Override
    public void run(List<String> argv, PrintStream out, PrintStream err) throws Exception {
        Args a = Args.parse("sql", argv, Set.of("file", "model", "max-new-tokens", "parallelism"), Set.of(),
                Set.of("var"));
        Path file = Path.of(a.string("file"));
        int parallelism = StreamingJob.positive("sql", a, "parallelism", 1);
        int maxNewTokens = StreamingJob.positive("sql", a, "max-new-tokens", 128);
        String script;
        try {
            script = Files.readString(file, StandardCharsets.UTF_8);
        } catch (IOException | RuntimeException e) {
            throw new Args.UsageException("sql: --file " + file + ": cannot read it (" + Main.describe(e) + ")");
        }
        List<String> raw = split(script);
        if (raw.isEmpty()) {
            throw new Args.UsageException("sql: --file " + file + " has no statements");
        }
        Map<String, String> vars = variables(a.all("var"));
        // every ${NAME} has a value before the model is resolved (which may download it)
        Map<String, String> check = new LinkedHashMap<>(vars);
        check.put(MODEL_VARIABLE, "");
        check.put(MODEL_NAME_VARIABLE, "");
        Set<String> used = new TreeSet<>();
        for (int i = 0; i < raw.size(); i++) {
            try {
                substitute(raw.get(i), check, used);
            } catch (IllegalArgumentException e) {
                throw new Args.UsageException("sql: " + file + ", statement " + (i + 1) + " (" + abbreviate(raw.get(i), 60)
                        + "): " + e.getMessage());
            }
        }
        for (String name : vars.keySet()) {
            if (!used.contains(name)) {
                err.println("sql: note: --var " + name + " is not used by " + file);
            }
        }

        // after every usage check: resolving may download the model or write the fallback
        ModelArgs.JobModel model =
                ModelArgs.resolveForJob("sql", a.string("model", ModelArgs.DEFAULT_MODEL), env, fallback, err);
        String modelPath = model.path().toString();
        vars.put(MODEL_VARIABLE, modelPath);
        vars.put(MODEL_NAME_VARIABLE, model.name());
        List<String> statements = new ArrayList<>();
        for (String statement : raw) {
            statements.add(substitute(statement, vars, new TreeSet<>()));
        }

        Configuration conf = new Configuration();
        // the embedded MiniCluster listens on loopback only
        conf.set(RestOptions.BIND_ADDRESS, "127.0.0.1");
        conf.set(RestOptions.ADDRESS, "127.0.0.1");
        conf.set(JobManagerOptions.BIND_HOST, "127.0.0.1");
        conf.set(TaskManagerOptions.BIND_HOST, "127.0.0.1");
        conf.set(TaskManagerOptions.HOST, "127.0.0.1");
        conf.set(CoreOptions.DEFAULT_PARALLELISM, parallelism);
        conf.setString("restart-strategy.type", "none");
        conf.set(PipelineOptions.GLOBAL_JOB_PARAMETERS, Map.of(
                "qwen.model.path", modelPath, "qwen.max-new-tokens", String.valueOf(maxNewTokens)));
        TableEnvironment t = TableEnvironment.create(
                EnvironmentSettings.newInstance().inStreamingMode().withConfiguration(conf).build());
        t.createTemporarySystemFunction("QWEN_GENERATE", new QwenGenerateAsync());
        t.createTemporarySystemFunction("QWEN_SUMMARIZE", new QwenSummarizeAsync());
        t.createTemporarySystemFunction("QWEN_TRANSLATE", new QwenTranslateAsync());
        err.println("sql: " + statements.size() + " statements from " + file + ", model " + model.name());

        ObjectMapper json = new ObjectMapper();
        for (int i = 0; i < statements.size(); i++) {
            String statement = statements.get(i);
            try {
                if (execute(t, statement, json, out)) {
                    // an INSERT prints nothing on stdout: say that it ran to its end
                    err.println("sql: statement " + (i + 1) + " (" + abbreviate(statement, 60) + ") finished");
                }
            } catch (Exception e) {
                throw new StatementException("sql: statement " + (i + 1) + " (" + abbreviate(statement, 60) + ") failed: "
                        + oneLine(e));
            }
        }
        out.flush();
    }

    /** @return true for a statement that ran a job with no rows to print (INSERT, EXECUTE) */
    private static boolean execute(TableEnvironment t, String statement, ObjectMapper json, PrintStream out)
            throws Exception {
        // TableEnvironment.executeSql has no SET: the SQL client sets its session's options itself,
        // and so does this; they apply to the statements after it
        Matcher set = SET.matcher(statement);
        if (set.matches()) {
            t.getConfig().set(set.group(1).replace("''", "'"), set.group(2).replace("''", "'"));
            return false;
        }
        Matcher reset = RESET.matcher(statement);
        if (reset.matches()) {
            t.getConfig().getConfiguration().removeKey(reset.group(1).replace("''", "'"));
            return false;
        }
        if (statement.regionMatches(true, 0, "SET", 0, 3) || statement.regionMatches(true, 0, "RESET", 0, 5)) {
            String keyword = statement.split("\\s+", 2)[0].toUpperCase(Locale.ROOT);
            if (keyword.equals("SET") || keyword.equals("RESET")) {
                throw new IllegalArgumentException("write " + (keyword.equals("SET") ? "SET 'key' = 'value'" : "RESET 'key'")
                        + ", with the key and value in single quotes");
            }
        }
        TableResult result = t.executeSql(statement);
        String keyword = statement.split("\\s+", 2)[0].toUpperCase(Locale.ROOT);
        if (keyword.equals("INSERT") || keyword.equals("EXECUTE")) {
            result.await();
            return true;
        }
        if (result.getResultKind() != ResultKind.SUCCESS_WITH_CONTENT) {
            return false;
        }
        List<String> names = result.getResolvedSchema().getColumnNames();
        try (CloseableIterator<Row> rows = result.collect()) {
            while (rows.hasNext()) {
                Row row = rows.next();
                Map<String, Object> o = new LinkedHashMap<>();
                if (row.getKind() != RowKind.INSERT) {
                    o.put("_op", row.getKind().shortString());
                }
                for (int c = 0; c < names.size(); c++) {
                    o.put(names.get(c), value(row.getField(c)));
                }
                out.println(json.writeValueAsString(o));
            }
        }
        return false;
    }

    private static Object value(Object v) {
        if (v == null || v instanceof String || v instanceof Number || v instanceof Boolean) {
            return v;
        }
        return String.valueOf(v);
    }

    /** {@code --var NAME=VALUE}s as a map, in order; usage errors name the bad one. */
    static Map<String, String> variables(List<String> specs) {
        Map<String, String> vars = new LinkedHashMap<>();
        for (String spec : specs) {
            int eq = spec.indexOf('=');
            String name = eq < 0 ? spec : spec.substring(0, eq);
            if (eq < 0 || !VARIABLE_NAME.matcher(name).matches()) {
                throw new Args.UsageException("sql: --var must be NAME=VALUE with NAME made of letters, digits and _,"
                        + " got '" + spec + "'");
            }
            if (name.equals(MODEL_VARIABLE) || name.equals(MODEL_NAME_VARIABLE)) {
                throw new Args.UsageException("sql: --var " + name + " cannot be set: ${" + name + "} comes from --model");
            }
            if (vars.put(name, spec.substring(eq + 1)) != null) {
                throw new Args.UsageException("sql: --var " + name + " given twice");
            }
        }
        return vars;
    }

    /**
     * {@code statement} with every {@code ${NAME}} replaced by its value in {@code vars} and
     * every {@code ${NAME:-DEFAULT}} by its value or else {@code DEFAULT}; {@code $${} stays a
     * literal {@code ${}. Values and defaults are text for SQL string literals, so a {@code '}
     * in them is doubled.
     *
     * @param used collects the names of {@code vars} the statement uses
     * @throws IllegalArgumentException naming a variable with no value and no default, or an
     *     unclosed or malformed {@code ${...}}
     */
    static String substitute(String statement, Map<String, String> vars, Set<String> used) {
        StringBuilder out = new StringBuilder(statement.length());
        int i = 0;
        int n = statement.length();
        while (i < n) {
            int at = statement.indexOf("${", i);
            if (at < 0) {
                out.append(statement, i, n);
                break;
            }
            if (at > i && statement.charAt(at - 1) == '$') {
                // $${ is a literal ${
                out.append(statement, i, at - 1).append("${");
                i = at + 2;
                continue;
            }
            out.append(statement, i, at);
            int close = statement.indexOf('}', at + 2);
            if (close < 0) {
                throw new IllegalArgumentException("'${' without a closing '}' at \"" + abbreviate(statement.substring(at), 30)
                        + "\" (write $${ for a literal ${)");
            }
            String body = statement.substring(at + 2, close);
            int dash = body.indexOf(":-");
            String name = dash < 0 ? body : body.substring(0, dash);
            if (!VARIABLE_NAME.matcher(name).matches()) {
                throw new IllegalArgumentException("'${" + body + "}' is not a variable: write ${NAME} or ${NAME:-DEFAULT}"
                        + " (NAME: letters, digits and _), or $${ for a literal ${");
            }
            String value = vars.get(name);
            if (value != null) {
                used.add(name);
            } else if (dash >= 0) {
                value = body.substring(dash + 2);
            } else {
                throw new IllegalArgumentException("${" + name + "} has no value: give --var " + name + "=VALUE");
            }
            out.append(value.replace("'", "''"));
            i = close + 1;
        }
        return out.toString();
    }

    /**
     * The statements of a script: split on {@code ;} outside quotes ({@code '...'}, {@code
     * "..."}, {@code `...`}) and comments ({@code -- ...}, {@code /* ... *}{@code /}), comments
     * before a statement dropped, blank statements left out.
     */
    static List<String> split(String script) {
        List<String> statements = new ArrayList<>();
        StringBuilder current = new StringBuilder();
        int n = script.length();
        int i = 0;
        while (i < n) {
            char ch = script.charAt(i);
            if (ch == '-' && i + 1 < n && script.charAt(i + 1) == '-') {
                int end = script.indexOf('\n', i);
                end = end < 0 ? n : end;
                if (current.toString().isBlank()) {
                    current.setLength(0);
                } else {
                    current.append(script, i, end);
                }
                i = end;
            } else if (ch == '/' && i + 1 < n && script.charAt(i + 1) == '*') {
                int end = script.indexOf("*/", i + 2);
                end = end < 0 ? n : end + 2;
                if (current.toString().isBlank()) {
                    current.setLength(0);
                } else {
                    current.append(script, i, end);
                }
                i = end;
            } else if (ch == '\'' || ch == '"' || ch == '`') {
                // a doubled quote inside is an escaped one: the loop ends the literal and starts another
                int end = script.indexOf(ch, i + 1);
                end = end < 0 ? n : end + 1;
                current.append(script, i, end);
                i = end;
            } else if (ch == ';') {
                add(statements, current);
                i++;
            } else {
                current.append(ch);
                i++;
            }
        }
        add(statements, current);
        return statements;
    }

    private static void add(List<String> statements, StringBuilder current) {
        String s = current.toString().strip();
        if (!s.isEmpty()) {
            statements.add(s);
        }
        current.setLength(0);
    }

    /**
     * The exception's message and, on the same line, its cause's: the outermost message in the
     * chain that ends with the root cause's and embeds no other exception. That is the error as
     * our code put it (a function's or the model provider's, naming the model, the option or the
     * value, over the root cause) rather than Flink's job-failure wrappers around it.
     */
    static String oneLine(Throwable e) {
        String msg = Main.describe(e);
        List<Throwable> chain = new ArrayList<>();
        for (Throwable t = e; t != null && !chain.contains(t); t = t.getCause()) {
            chain.add(t);
        }
        Throwable root = chain.get(chain.size() - 1);
        String cause = root.getMessage();
        if (cause != null) {
            for (Throwable t : chain) {
                String m = t.getMessage();
                if (m != null && m.endsWith(cause) && !m.contains("Exception: ")) {
                    cause = m;
                    break;
                }
            }
        }
        if (root != e && cause != null && !msg.contains(cause)) {
            msg += ": " + cause;
        }
        return abbreviate(msg, 1000);
    }

    private static String abbreviate(String s, int max) {
        String line = s.replaceAll("\\s+", " ").strip();
        return line.length() <= max ? line : line.substring(0, max - 3) + "...";
    }

    /** A statement failed; the message is the whole report. */
    static final class StatementException extends Exception {
        private static final long serialVersionUID = 1L;

        StatementException(String message) {
            super(message);
        }
    }
}
