/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.cluster;

import java.io.IOException;
import java.io.InputStream;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.util.Arrays;

/**
 * The entry point of every child JVM of {@link FlinkProcessCluster}: {@code ChildMain <main class>
 * <args...>} runs that class's {@code main} and dies with its parent. The parent holds the write
 * end of this JVM's stdin and never writes to it; when the parent exits in any way (a normal
 * end, an exception, {@code kill -9}), the operating system closes that pipe, the read here
 * returns end-of-file, and this JVM halts. No shutdown hook of the parent is needed for that
 * (it has one too, for a quicker end).
 */
public final class ChildMain {

    private ChildMain() {}

    public static void main(String[] args) throws Throwable {
        Thread watchdog = new Thread(ChildMain::haltAtEndOfStdin, "parent-watchdog");
        watchdog.setDaemon(true);
        watchdog.start();
        Method main = Class.forName(args[0]).getMethod("main", String[].class);
        try {
            main.invoke(null, (Object) Arrays.copyOfRange(args, 1, args.length));
        } catch (InvocationTargetException e) {
            throw e.getCause();
        }
    }

    private static void haltAtEndOfStdin() {
        InputStream in = System.in;
        byte[] buf = new byte[64];
        try {
            while (in.read(buf) >= 0) {
                // the parent writes nothing; anything read is ignored
            }
        } catch (IOException e) {
            // a broken pipe means the same: the parent is gone
        }
        Runtime.getRuntime().halt(143);
    }
}
