//! `#[shmproc::entry]`: registers a function as an entry point that `Process::spawn` and `Pool`
//! can run in another process. Use it through the facade (`#[shmproc::entry]`); the expansion
//! names only `::shmproc::...` paths.
//!
//! ```
//! #[shmproc::entry]
//! fn square(n: u64) -> u64 {
//!     n * n
//! }
//!
//! assert_eq!(square(3), 9); // still callable
//! let p = shmproc::Process::spawn(square, 7)?; // Process<u64>
//! assert_eq!(p.join_result()?, 49);
//! # Ok::<(), shmproc::ProcessError>(())
//! ```
//!
//! The function is registered under a key known at compile time — its module path, name,
//! signature and source location (`file!():line!():column!()` of its name) — never under its
//! address. The location keeps apart entries that share a module path, name and signature
//! (function-local entries in two functions of one module); the key is the same in every run of
//! one build, which is all a spawned child (a re-run of the same executable) needs.
//!
//! `square` becomes a zero-sized constant that implements `shmproc::Entry` (typing `spawn`) and
//! derefs to the function pointer, so `square(3)` and `iter.map(*square)` keep working.

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::{format_ident, quote, quote_spanned};
use syn::{parse_macro_input, Error, FnArg, ItemFn, ReturnType, Type};

/// Registers a function as a spawnable entry point. It takes at most one argument (a tuple for
/// several) and both argument and return type implement `Serialize + DeserializeOwned`.
#[proc_macro_attribute]
pub fn entry(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        let msg = "#[shmproc::entry] takes no arguments";
        return Error::new(Span::call_site(), msg).to_compile_error().into();
    }
    let func = parse_macro_input!(item as ItemFn);
    match expand(func) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand(mut func: ItemFn) -> syn::Result<proc_macro2::TokenStream> {
    let sig = &func.sig;
    let reject = |what: &str| {
        Err(Error::new_spanned(
            sig,
            format!("an entry cannot be {what}"),
        ))
    };
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return reject("generic");
    }
    if sig.asyncness.is_some() {
        return reject("async");
    }
    if sig.unsafety.is_some() {
        return reject("unsafe");
    }
    if sig.variadic.is_some() || sig.abi.is_some() {
        return reject("extern or variadic");
    }
    let arg_ty: Type = match sig.inputs.len() {
        0 => syn::parse_quote!(()),
        1 => match &sig.inputs[0] {
            FnArg::Typed(pat) => (*pat.ty).clone(),
            FnArg::Receiver(_) => return reject("a method"),
        },
        _ => {
            let msg = "an entry takes one argument: use a tuple, e.g. `(a, b): (u64, String)`";
            return Err(Error::new_spanned(&sig.inputs, msg));
        }
    };
    let ret_ty: Type = match &sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    let takes_arg = !sig.inputs.is_empty();

    let name = sig.ident.clone();
    let vis = func.vis.clone();
    let inner = format_ident!("__shmproc_entry_fn_{}", name);
    let handle = format_ident!("__shmproc_Entry_{}", name);
    let register = format_ident!("__SHMPROC_REGISTER_{}", name.to_string().to_uppercase());
    let key = format!(
        "::{}({}) -> {}",
        name,
        quote!(#arg_ty).to_string().replace(' ', ""),
        quote!(#ret_ty).to_string().replace(' ', "")
    );
    // Where the function's name is: `line!()` and `column!()` resolve to the outermost macro
    // call, so entries made by one `macro_rules!` called twice get two locations too.
    let location = quote_spanned! {name.span()=>
        " @ ", ::core::file!(), ":", ::core::line!(), ":", ::core::column!()
    };
    // Doc comments and other outer attributes describe the entry: keep them on the constant.
    let attrs = std::mem::take(&mut func.attrs);
    func.sig.ident = inner.clone();
    func.vis = syn::Visibility::Inherited;
    let fn_ptr = if takes_arg {
        quote!(fn(#arg_ty) -> #ret_ty)
    } else {
        quote!(fn() -> #ret_ty)
    };
    let call = if takes_arg {
        quote!(#inner(arg))
    } else {
        quote!({
            let () = arg;
            #inner()
        })
    };

    Ok(quote! {
        #[doc(hidden)]
        #[allow(non_snake_case)]
        #func

        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug)]
        #vis struct #handle;

        #(#attrs)*
        #[allow(non_upper_case_globals)]
        #vis const #name: #handle = #handle;

        impl ::core::ops::Deref for #handle {
            type Target = #fn_ptr;
            fn deref(&self) -> &Self::Target {
                const FUNCTION: #fn_ptr = #inner;
                &FUNCTION
            }
        }

        impl ::shmproc::Entry for #handle {
            type Arg = #arg_ty;
            type Ret = #ret_ty;
            const KEY: &'static str =
                ::core::concat!(::core::module_path!(), #key, #location);
            const HANDLE: Self = #handle;
            fn call(self, arg: #arg_ty) -> #ret_ty {
                #call
            }
        }

        #[::shmproc::__private::linkme::distributed_slice(::shmproc::__private::ENTRIES)]
        #[linkme(crate = ::shmproc::__private::linkme)]
        #[doc(hidden)]
        static #register: ::shmproc::__private::Registered =
            ::shmproc::__private::Registered::of::<#handle>();
    })
}
