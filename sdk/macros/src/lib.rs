//! `#[derive(ConnectorConfig)]` for the presence connector SDK.
//!
//! Use it through `presence_connector_sdk::ConnectorConfig`; the generated
//! code names that crate, and the work (reading, checking, error messages)
//! lives there, so this crate only turns attributes into a field table. See
//! the SDK's `ConnectorConfig` trait for the attributes.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::{
    Data, DeriveInput, Fields, Ident, LitBool, LitInt, LitStr, Token, parse_macro_input,
    punctuated::Punctuated,
};

/// Derives `presence_connector_sdk::ConnectorConfig` for a struct with named
/// fields: `config_fields()` (what `describe` announces) and `from_config`
/// (the typed, checked parse). Field attributes, all inside `#[config(...)]`:
///
/// - `name = "wire_name"`: the field's configuration name (default: the Rust
///   field name);
/// - `label = "..."`: the operator-facing label (default: the name with
///   spaces, capitalised);
/// - `description = "..."`: help text (default: the field's doc comment);
/// - `secret`: stored encrypted and never shown (implied by `Secret`);
/// - `default = "text" | 300 | true`: used when the field is absent or empty;
///   the field is then optional for the operator;
/// - `range(min = 60, max = 86400)`: bounds of an integer field (either may
///   be left out; the Rust type's own bounds always apply);
/// - `min_len = 16`: minimum length in bytes of a text field;
/// - `url`: an absolute http(s)/ws(s) URL (field kind `url`);
/// - `choice("a", "b")`: one of the listed values (field kind `choice`);
/// - `server_address(default_port = 5060)`: a server as `host[:port]`
///   (field kind `server-address`);
/// - `validate = "path::to_fn"`: a further check, `fn(&T) -> Result<(), M>`
///   (`M: Into<String>`; `&T` may deref, e.g. `&str` for a `String`) whose
///   message is reported against the field.
///
/// An `Option<T>` field is optional; any other field without a default is
/// required.
#[proc_macro_derive(ConnectorConfig, attributes(config))]
pub fn derive_connector_config(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// What the value of a field must be, implied by its attributes; checked
/// against the field's Rust type at compile time.
#[derive(Clone, Copy, PartialEq)]
enum Needs {
    Text,
    Integer,
    Boolean,
}

impl Needs {
    fn tokens(self) -> TokenStream2 {
        match self {
            Needs::Text => quote!(Text),
            Needs::Integer => quote!(Integer),
            Needs::Boolean => quote!(Boolean),
        }
    }
    fn words(self) -> &'static str {
        match self {
            Needs::Text => "a text type (String, Secret or an Option of them)",
            Needs::Integer => "an integer type (i64, u32, u16, ... or an Option of them)",
            Needs::Boolean => "bool or Option<bool>",
        }
    }
}

#[derive(Default)]
struct FieldAttrs {
    name: Option<LitStr>,
    label: Option<LitStr>,
    description: Option<LitStr>,
    secret: bool,
    default: Option<(TokenStream2, Needs)>,
    min: Option<TokenStream2>,
    max: Option<TokenStream2>,
    min_len: Option<LitInt>,
    shape: Option<TokenStream2>,
    validate: Option<syn::Path>,
    /// Every constraint on the value's kind, with the attribute that set it.
    needs: Vec<(Needs, &'static str)>,
}

fn expand(input: &DeriveInput) -> syn::Result<TokenStream2> {
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &input.generics,
            "ConnectorConfig cannot be derived for a generic struct",
        ));
    }
    let fields = match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(named) => &named.named,
            _ => {
                return Err(syn::Error::new_spanned(
                    &input.ident,
                    "ConnectorConfig needs a struct with named fields",
                ));
            }
        },
        _ => {
            return Err(syn::Error::new_spanned(
                &input.ident,
                "ConnectorConfig can only be derived for a struct",
            ));
        }
    };

    let sdk = quote!(::presence_connector_sdk);
    let cfg = quote!(#sdk::__private::config);
    let ident = &input.ident;
    let mut specs = Vec::new();
    let mut listed = Vec::new();
    let mut reads = Vec::new();
    let mut inits = Vec::new();
    let mut names = std::collections::HashSet::new();

    for (index, field) in fields.iter().enumerate() {
        let field_ident = field.ident.as_ref().expect("named field");
        let ty = &field.ty;
        let attrs = field_attrs(field)?;
        let name = attrs.name.clone().unwrap_or_else(|| {
            LitStr::new(
                field_ident.to_string().trim_start_matches("r#"),
                field_ident.span(),
            )
        });
        if !names.insert(name.value()) {
            return Err(syn::Error::new_spanned(
                &name,
                format!("two fields are named `{}`", name.value()),
            ));
        }
        let label = attrs
            .label
            .clone()
            .unwrap_or_else(|| LitStr::new(&default_label(&name.value()), name.span()));
        let description = match &attrs.description {
            Some(d) => d.clone(),
            None => LitStr::new(&doc_comment(field), Span::call_site()),
        };
        let secret = attrs.secret;
        let default = match &attrs.default {
            Some((value, _)) => quote!(::core::option::Option::Some(#value)),
            None => quote!(::core::option::Option::None),
        };
        let min = opt(&attrs.min);
        let max = opt(&attrs.max);
        let min_len = match &attrs.min_len {
            Some(n) => quote!(::core::option::Option::Some(#n)),
            None => quote!(::core::option::Option::None),
        };
        let shape = attrs.shape.clone().unwrap_or_else(|| quote!(Plain));
        let spec = format_ident!("__SPEC_{}", index);
        specs.push(quote! {
            const #spec: #cfg::FieldSpec = #cfg::FieldSpec {
                name: #name,
                label: #label,
                description: #description,
                secret: #secret,
                default: #default,
                min: #min,
                max: #max,
                min_len: #min_len,
                shape: #cfg::Shape::#shape,
            };
        });
        // Compile-time checks that the attributes fit the field's type, so a
        // `range` on a String is an error at build time, not at configure.
        for (needs, attr) in &attrs.needs {
            let kind = needs.tokens();
            let message = format!("field `{}`: `{attr}` needs {}", name.value(), needs.words());
            specs.push(quote! {
                const _: () = ::core::assert!(
                    ::core::matches!(
                        <#ty as #cfg::FieldValue>::VALUE_KIND,
                        #cfg::ValueKind::#kind
                    ),
                    #message
                );
            });
        }
        if attrs.default.is_some() {
            let message = format!(
                "field `{}`: an Option field takes no `default` (use the plain type)",
                name.value()
            );
            specs.push(quote! {
                const _: () = ::core::assert!(!<#ty as #cfg::FieldValue>::OPTIONAL, #message);
            });
        }
        listed.push(quote!(#cfg::FieldSpec::field::<#ty>(&#spec)));
        let local = format_ident!("__field_{}", index);
        let validate = attrs.validate.as_ref().map(|path| {
            quote! {
                if let ::core::option::Option::Some(value) =
                    <#ty as #cfg::FieldValue>::present(&#local)
                {
                    #path(value).map_err(|message| #sdk::invalid_config(#name, message))?;
                }
            }
        });
        reads.push(quote! {
            let #local = <#ty as #cfg::FieldValue>::read(config, &#spec)?;
            #validate
        });
        inits.push(quote!(#field_ident: #local));
    }

    Ok(quote! {
        #[allow(non_upper_case_globals)]
        const _: () = {
            #(#specs)*

            #[automatically_derived]
            impl #sdk::ConnectorConfig for #ident {
                fn config_fields() -> ::std::vec::Vec<#sdk::ConfigField> {
                    ::std::vec![#(#listed),*]
                }

                fn from_config(
                    config: &#sdk::Config,
                ) -> ::core::result::Result<Self, #sdk::ConnectorError> {
                    #(#reads)*
                    ::core::result::Result::Ok(Self { #(#inits),* })
                }
            }
        };
    })
}

fn opt(value: &Option<TokenStream2>) -> TokenStream2 {
    match value {
        Some(v) => quote!(::core::option::Option::Some(#v)),
        None => quote!(::core::option::Option::None),
    }
}

fn field_attrs(field: &syn::Field) -> syn::Result<FieldAttrs> {
    let mut attrs = FieldAttrs::default();
    let cfg = quote!(::presence_connector_sdk::__private::config);
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("config")) {
        attr.parse_nested_meta(|meta| {
            let key = meta
                .path
                .get_ident()
                .map(Ident::to_string)
                .unwrap_or_default();
            match key.as_str() {
                "name" => attrs.name = Some(meta.value()?.parse()?),
                "label" => attrs.label = Some(meta.value()?.parse()?),
                "description" => attrs.description = Some(meta.value()?.parse()?),
                "secret" => {
                    attrs.secret = true;
                    attrs.needs.push((Needs::Text, "secret"));
                }
                "default" => {
                    let input = meta.value()?;
                    let default = if input.peek(LitStr) {
                        let s: LitStr = input.parse()?;
                        (quote!(#cfg::DefaultValue::Text(#s)), Needs::Text)
                    } else if input.peek(LitBool) {
                        let b: LitBool = input.parse()?;
                        (quote!(#cfg::DefaultValue::Boolean(#b)), Needs::Boolean)
                    } else {
                        let n = signed_int(input)?;
                        (quote!(#cfg::DefaultValue::Integer(#n)), Needs::Integer)
                    };
                    attrs.needs.push((default.1, "default"));
                    attrs.default = Some(default);
                }
                "range" => {
                    meta.parse_nested_meta(|bound| {
                        if bound.path.is_ident("min") {
                            attrs.min = Some(signed_int(bound.value()?)?);
                        } else if bound.path.is_ident("max") {
                            attrs.max = Some(signed_int(bound.value()?)?);
                        } else {
                            return Err(bound.error("expected `min = N` or `max = N`"));
                        }
                        Ok(())
                    })?;
                    attrs.needs.push((Needs::Integer, "range"));
                }
                "min_len" => {
                    attrs.min_len = Some(meta.value()?.parse()?);
                    attrs.needs.push((Needs::Text, "min_len"));
                }
                "url" => {
                    set_shape(&mut attrs, &meta, quote!(Url))?;
                    attrs.needs.push((Needs::Text, "url"));
                }
                "choice" => {
                    let content;
                    syn::parenthesized!(content in meta.input);
                    let values: Punctuated<LitStr, Token![,]> =
                        content.parse_terminated(|p| p.parse::<LitStr>(), Token![,])?;
                    if values.is_empty() {
                        return Err(meta.error("`choice` needs at least one value"));
                    }
                    let values = values.iter();
                    set_shape(&mut attrs, &meta, quote!(Choice(&[#(#values),*])))?;
                    attrs.needs.push((Needs::Text, "choice"));
                }
                "server_address" => {
                    let mut port: Option<LitInt> = None;
                    meta.parse_nested_meta(|inner| {
                        if inner.path.is_ident("default_port") {
                            port = Some(inner.value()?.parse()?);
                            Ok(())
                        } else {
                            Err(inner.error("expected `default_port = N`"))
                        }
                    })?;
                    let Some(port) = port else {
                        return Err(meta.error("`server_address` needs `(default_port = N)`"));
                    };
                    set_shape(&mut attrs, &meta, quote!(ServerAddress(#port)))?;
                    attrs.needs.push((Needs::Text, "server_address"));
                }
                "validate" => {
                    let path: LitStr = meta.value()?.parse()?;
                    attrs.validate = Some(path.parse()?);
                }
                _ => {
                    return Err(meta.error(
                        "unknown config attribute; expected one of name, label, description, \
                         secret, default, range, min_len, url, choice, server_address, validate",
                    ));
                }
            }
            Ok(())
        })?;
    }
    Ok(attrs)
}

fn set_shape(
    attrs: &mut FieldAttrs,
    meta: &syn::meta::ParseNestedMeta<'_>,
    shape: TokenStream2,
) -> syn::Result<()> {
    if attrs.shape.is_some() {
        return Err(meta.error("a field takes only one of url, choice, server_address"));
    }
    attrs.shape = Some(shape);
    Ok(())
}

/// An integer literal with an optional leading minus, as an `i64` expression.
fn signed_int(input: syn::parse::ParseStream<'_>) -> syn::Result<TokenStream2> {
    let negative = input.peek(Token![-]);
    if negative {
        input.parse::<Token![-]>()?;
    }
    let lit: LitInt = input.parse()?;
    let value: i64 = lit.base10_parse()?;
    let value = if negative { -value } else { value };
    Ok(quote!(#value))
}

/// `max_skew_seconds` → `Max skew seconds`.
fn default_label(name: &str) -> String {
    let words = name.replace(['_', '-'], " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The field's `///` lines, joined into one paragraph-preserving text.
fn doc_comment(field: &syn::Field) -> String {
    let mut lines = Vec::new();
    for attr in &field.attrs {
        if !attr.path().is_ident("doc") {
            continue;
        }
        if let syn::Meta::NameValue(nv) = &attr.meta
            && let syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) = &nv.value
        {
            lines.push(s.value().trim().to_string());
        }
    }
    let mut text = String::new();
    for line in lines {
        if line.is_empty() {
            if !text.is_empty() && !text.ends_with("\n\n") {
                text.push_str("\n\n");
            }
        } else {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push(' ');
            }
            text.push_str(&line);
        }
    }
    text.trim_end().to_string()
}
