"""Phone books for desk phones and routers (Yealink/Grandstream, Snom, Fritz!Box XML, vCard): names and
numbers only, fetched with a secret token in the URL."""
