/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.jobs.cli;

import io.flinkqwen.kernels.backend.KernelBackends;
import java.io.PrintStream;
import java.util.Arrays;
import java.util.List;

/**
 * The {@code flink-qwen} command line. Exit codes: 0 success, 1 the work failed (the message
 * says what and where), 2 a wrong command line.
 */
public final class Main {

    static final String USAGE =
            String.join(
                    "\n",
                    "usage: flink-qwen <command> [options]",
                    "",
                    "commands:",
                    "  generate         generate text from a prompt",
                    "  score            teacher-forced top-K logits at every position",
                    "  make-test-model  write a random-weight Qwen2 model (GGUF or Hugging Face)",
                    "  bench            prefill and decode speed, optionally next to llama.cpp",
                    "  kv-capacity      keys one KV budget holds, per KV format, with and without prefix sharing",
                    "  summarize        rolling summaries of JSON log events per source (file, stdin or Kafka)",
                    "  translate        streaming translation of JSON requests (file, stdin or Kafka)",
                    "  sql              run a SQL script with the QWEN_* functions on an embedded MiniCluster",
                    "",
                    "'flink-qwen <command> --help' lists a command's options.",
                    "",
                    "every command also takes --device auto|cpu|tornado: the kernel backend (default auto:",
                    "TornadoVM where its backend is on the class path and finds a device, else the CPU).");

    private Main() {}

    public static void main(String[] args) {
        System.exit(run(args, System.out, System.err));
    }

    /** Runs a command; returns the exit code. */
    public static int run(String[] args, PrintStream out, PrintStream err) {
        if (args.length == 0 || args[0].equals("--help") || args[0].equals("-h") || args[0].equals("help")) {
            (args.length == 0 ? err : out).println(USAGE);
            return args.length == 0 ? 2 : 0;
        }
        String command = args[0];
        List<String> rest;
        try {
            rest = takeDevice(Arrays.asList(args).subList(1, args.length));
        } catch (Args.UsageException e) {
            err.println("error: " + e.getMessage());
            return 2;
        }
        Command c;
        switch (command) {
            case "generate":
                c = new GenerateCommand();
                break;
            case "score":
                c = new ScoreCommand();
                break;
            case "make-test-model":
                c = new MakeTestModelCommand();
                break;
            case "bench":
                c = new BenchCommand();
                break;
            case "kv-capacity":
                c = new KvCapacityCommand();
                break;
            case "summarize":
                c = new SummarizeCommand(System.getenv());
                break;
            case "translate":
                c = new TranslateCommand(System.getenv());
                break;
            case "sql":
                c = new SqlCommand(System.getenv());
                break;
            default:
                err.println("error: unknown command '" + command + "'\n\n" + USAGE);
                return 2;
        }
        return run(c, rest, out, err);
    }

    /**
     * Takes {@code --device NAME} (or {@code --device=NAME}) out of a command's arguments and
     * sets it as the {@value KernelBackends#DEVICE_PROPERTY} system property, which every forward
     * pass of this JVM reads (the embedded MiniCluster's operators included).
     */
    static List<String> takeDevice(List<String> args) throws Args.UsageException {
        List<String> rest = new java.util.ArrayList<>();
        for (int i = 0; i < args.size(); i++) {
            String a = args.get(i);
            String value = null;
            if (a.equals("--device")) {
                if (i + 1 >= args.size()) {
                    throw new Args.UsageException("--device needs a value: auto, cpu or tornado");
                }
                value = args.get(++i);
            } else if (a.startsWith("--device=")) {
                value = a.substring("--device=".length());
            } else {
                rest.add(a);
                continue;
            }
            if (value.isBlank() || value.startsWith("--")) {
                throw new Args.UsageException("--device needs a value: auto, cpu or tornado, got '" + value + "'");
            }
            System.setProperty(KernelBackends.DEVICE_PROPERTY, value);
        }
        return rest;
    }

    /** Runs one command with its arguments; returns the exit code. */
    static int run(Command c, List<String> rest, PrintStream out, PrintStream err) {
        if (rest.contains("--help") || rest.contains("-h")) {
            out.println(c.usage());
            return 0;
        }
        try {
            c.run(rest, out, err);
            out.flush();
            return 0;
        } catch (Args.UsageException e) {
            err.println("error: " + e.getMessage());
            err.println(c.usage());
            return 2;
        } catch (OutOfMemoryError e) {
            err.println("error: out of memory (" + e.getMessage() + "); give the JVM more heap with FLINK_QWEN_JAVA_OPTS=-Xmx...");
            return 1;
        } catch (Exception e) {
            err.println("error: " + describe(e));
            if (System.getenv("FLINK_QWEN_DEBUG") != null) {
                e.printStackTrace(err);
            }
            return 1;
        }
    }

    /** One line: the message, with the cause's when it adds something. */
    static String describe(Throwable e) {
        String msg = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
        Throwable cause = e.getCause();
        if (cause != null && cause.getMessage() != null && !msg.contains(cause.getMessage())) {
            msg += ": " + cause.getMessage();
        }
        return msg;
    }

    /** One subcommand. */
    interface Command {
        String usage();

        void run(List<String> args, PrintStream out, PrintStream err) throws Exception;
    }
}
