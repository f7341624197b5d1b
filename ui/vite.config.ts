import { defineConfig } from "vite";

// Fixed file names: the node compiles ui/dist into its binary by name
// (crates/node/src/control/dashboard.rs), and a rebuild must reproduce the committed files exactly.
export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    modulePreload: false,
    rollupOptions: {
      output: {
        entryFileNames: "assets/app.js",
        chunkFileNames: "assets/app-[name].js",
        assetFileNames: "assets/app[extname]",
      },
    },
  },
});
