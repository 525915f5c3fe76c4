import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", "coverage/", ".exp/", ".ci-work/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["loadtest/**/*.js"],
    languageOptions: { globals: { __VU: "readonly", __ENV: "readonly", __ITER: "readonly", console: "readonly" } },
  },
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
    },
  },
);
